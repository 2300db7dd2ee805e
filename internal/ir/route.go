package ir

// Route is one match of one rule of an HTTPRoute or GRPCRoute, with everything the data
// plane needs to serve it.
type Route struct {
	// Name is "httproute/namespace/name/rule/N/match/M" (or grpcroute/...).
	Name string `json:"name"`
	// RuleName is the rule's optional spec name, for logs and metrics.
	RuleName string `json:"ruleName,omitempty"`
	Match    Match  `json:"match"`

	RequestHeaders  *HeaderModifier `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeaderModifier `json:"responseHeaders,omitempty"`
	Redirect        *Redirect       `json:"redirect,omitempty"`
	Rewrite         *Rewrite        `json:"rewrite,omitempty"`
	Mirrors         []Mirror        `json:"mirrors,omitempty"`
	CORS            *CORS           `json:"cors,omitempty"`

	// DirectResponse answers the request without contacting a backend. Set when the rule
	// cannot be served as written (for example an unsupported filter): the spec asks for
	// a 500 rather than a partially applied rule.
	DirectResponse *DirectResponse `json:"directResponse,omitempty"`

	// Backends share traffic by Weight. A backend with an empty Cluster is a reference
	// that could not be resolved: its share of requests answers 500.
	Backends []Backend `json:"backends,omitempty"`
	Timeouts *Timeouts `json:"timeouts,omitempty"`
	Retry    *Retry    `json:"retry,omitempty"`
	// GRPC marks routes that came from a GRPCRoute. Their failures are answered the gRPC
	// way: HTTP 200 with grpc-status UNAVAILABLE (14) where an HTTP route would answer
	// 500 or 503, and DEADLINE_EXCEEDED (4) where it would answer 504.
	GRPC bool `json:"grpc,omitempty"`
}

// Match is the conjunction of every condition it holds.
type Match struct {
	Path        PathMatch     `json:"path"`
	Headers     []StringMatch `json:"headers,omitempty"`
	QueryParams []StringMatch `json:"queryParams,omitempty"`
	Method      string        `json:"method,omitempty"`
}

// PathMatchType says how PathMatch.Value is compared.
type PathMatchType string

// Path match types.
const (
	PathExact  PathMatchType = "Exact"
	PathPrefix PathMatchType = "PathPrefix"
	PathRegex  PathMatchType = "RegularExpression"
)

// PathMatch compares the request path, decoded (as in Go's URL.Path). PathPrefix
// matches whole segments: "/foo" matches "/foo", "/foo/" and "/foo/bar" but not
// "/foobar". RegularExpression (RE2) must match the whole path, not a substring.
type PathMatch struct {
	Type  PathMatchType `json:"type"`
	Value string        `json:"value"`
}

// StringMatchType says how StringMatch.Value is compared.
type StringMatchType string

// String match types.
const (
	MatchExact StringMatchType = "Exact"
	MatchRegex StringMatchType = "RegularExpression"
)

// StringMatch compares a header (name case-insensitive, canonicalised) or query
// parameter (name case-sensitive) with a value. Regexes are RE2, matched against the
// whole value.
type StringMatch struct {
	Name  string          `json:"name"`
	Type  StringMatchType `json:"type"`
	Value string          `json:"value"`
}

// Header is a name and a value.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// HeaderModifier changes headers: Set replaces, Add appends, Remove deletes.
type HeaderModifier struct {
	Set    []Header `json:"set,omitempty"`
	Add    []Header `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// PathModifierType says how a redirect or rewrite changes the path.
type PathModifierType string

// Path modifier types.
const (
	// FullPath replaces the whole path with Value.
	FullPath PathModifierType = "ReplaceFullPath"
	// PrefixPath replaces the matched prefix (the route's PathPrefix match) with Value.
	PrefixPath PathModifierType = "ReplacePrefixMatch"
)

// PathModifier rewrites the request path.
type PathModifier struct {
	Type  PathModifierType `json:"type"`
	Value string           `json:"value"`
}

// Redirect answers with a redirect built from the request. Empty fields keep the
// request's value (an empty Hostname means the Host header without its port). Port 0 means: the well-known port of the scheme when Scheme is set,
// otherwise the port the request arrived on; a well-known port for the resulting scheme
// (80 for http, 443 for https) is left out of the Location header.
type Redirect struct {
	Scheme     string        `json:"scheme,omitempty"`
	Hostname   string        `json:"hostname,omitempty"`
	Port       uint32        `json:"port,omitempty"`
	Path       *PathModifier `json:"path,omitempty"`
	StatusCode int           `json:"statusCode"`
}

// Rewrite changes the request before it is forwarded.
type Rewrite struct {
	Hostname string        `json:"hostname,omitempty"`
	Path     *PathModifier `json:"path,omitempty"`
}

// Mirror copies requests to a cluster, fire-and-forget. A Numerator/Denominator of
// requests is mirrored (1/1 when unset by the user).
type Mirror struct {
	Cluster     string `json:"cluster"`
	Numerator   int32  `json:"numerator"`
	Denominator int32  `json:"denominator"`
}

// CORS is the route's cross-origin policy. Origins may hold "*" or one wildcard label
// ("https://*.example.com"); Methods and Headers may be ["*"].
type CORS struct {
	AllowOrigins     []string `json:"allowOrigins,omitempty"`
	AllowCredentials bool     `json:"allowCredentials,omitempty"`
	AllowMethods     []string `json:"allowMethods,omitempty"`
	AllowHeaders     []string `json:"allowHeaders,omitempty"`
	ExposeHeaders    []string `json:"exposeHeaders,omitempty"`
	MaxAgeSeconds    int32    `json:"maxAgeSeconds,omitempty"`
}

// DirectResponse is a fixed answer.
type DirectResponse struct {
	StatusCode int    `json:"statusCode"`
	Body       string `json:"body,omitempty"`
}

// Backend is one weighted destination of a route.
type Backend struct {
	// Cluster names an entry of Config.Clusters; empty means the reference was invalid
	// and this share of traffic answers 500.
	Cluster string `json:"cluster,omitempty"`
	Weight  uint32 `json:"weight"`
	// Invalid explains an empty Cluster, for /config readers.
	Invalid string `json:"invalid,omitempty"`
	// Filters that apply only when this backend is chosen.
	RequestHeaders  *HeaderModifier `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeaderModifier `json:"responseHeaders,omitempty"`
}

// Timeouts bound a request. Durations are Go duration strings ("10s", "500ms"); empty
// or "0s" means no limit ("0s": the route asked for none). Request covers the whole exchange with the client, BackendRequest a
// single attempt against a backend.
type Timeouts struct {
	Request        string `json:"request,omitempty"`
	BackendRequest string `json:"backendRequest,omitempty"`
}

// Retry retries failed attempts. Codes are the HTTP status codes that count as
// failures; connection errors always do. Backoff is a Go duration string.
type Retry struct {
	Attempts int    `json:"attempts"`
	Codes    []int  `json:"codes,omitempty"`
	Backoff  string `json:"backoff,omitempty"`
}

// L4Route forwards a TLS, TCP or UDP stream.
//
// On a TLS listener the entries are ordered most specific SNI name first (then oldest
// route): a connection goes to the first entry whose name matches its SNI. On TCP and
// UDP listeners only the first entry (the oldest route) receives traffic; the others
// wait their turn. Backends are weighted as for HTTP; a connection picked for an
// invalid backend (empty Cluster), or to a rule whose weights are all zero, is closed.
type L4Route struct {
	// Name is "tlsroute/namespace/name/rule/N" (or tcproute, udproute).
	Name string `json:"name"`
	// Hostnames holds the one SNI name (exact or "*.suffix") a TLS entry accepts; empty
	// means any.
	Hostnames []string  `json:"hostnames,omitempty"`
	Backends  []Backend `json:"backends,omitempty"`
}
