package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ListenerPolicyKind is the kind of ListenerPolicy.
const ListenerPolicyKind = "ListenerPolicy"

// ListenerPolicy is the platform team's defaults for a Gateway's listeners: the TLS
// versions and cipher suites clients may use, HTTP Strict Transport Security,
// redirecting plain HTTP to HTTPS, and a rate limit per client. It lives in the Gateway's namespace (whoever may
// edit the Gateway may edit it) and applies to every listener of the Gateway,
// including those app teams add with ListenerSets, which cannot weaken it.
//
// A policy that targets the whole Gateway sets the defaults; one that targets a
// listener (sectionName) overrides, field by field, what it sets for that listener.
// Among policies of the same scope for a Gateway, the oldest wins and the others are
// reported Conflicted.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=portico
// +kubebuilder:subresource:status
// +kubebuilder:metadata:labels="gateway.networking.k8s.io/policy=Direct"
type ListenerPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ListenerPolicySpec `json:"spec"`
	// +optional
	Status gwv1.PolicyStatus `json:"status,omitempty"`
}

// ListenerPolicySpec selects Gateways (or single listeners) and what applies to them.
type ListenerPolicySpec struct {
	// TargetRefs are Gateways in the policy's namespace, optionally narrowed to one
	// listener by sectionName.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:message="targetRefs must be unique",rule="self.all(p1, self.exists_one(p2, p1.group == p2.group && p1.kind == p2.kind && p1.name == p2.name && (has(p1.sectionName) ? has(p2.sectionName) && p1.sectionName == p2.sectionName : !has(p2.sectionName))))"
	TargetRefs []gwv1.LocalPolicyTargetReferenceWithSectionName `json:"targetRefs"`

	// TLS bounds the TLS that HTTPS and TLS-terminating listeners accept from clients.
	// +optional
	TLS *ListenerTLSPolicy `json:"tls,omitempty"`

	// HSTS adds a Strict-Transport-Security header to responses served over HTTPS.
	// +optional
	HSTS *HSTSPolicy `json:"hsts,omitempty"`

	// HTTPSRedirect answers requests on plain HTTP listeners with a redirect to the same
	// URL over HTTPS, except ACME HTTP-01 challenges (/.well-known/acme-challenge/),
	// which routes keep serving so that certificates can be issued.
	// +optional
	HTTPSRedirect *HTTPSRedirectPolicy `json:"httpsRedirect,omitempty"`

	// RateLimit bounds the requests each client address may send to an HTTP or HTTPS
	// listener; requests over it are answered 429 with Retry-After. The limit is kept
	// by each Portico instance, so N replicas let through up to N times it.
	// +optional
	RateLimit *RateLimitPolicy `json:"rateLimit,omitempty"`

	// Limits bound what a client may send to an HTTP or HTTPS listener.
	// +optional
	Limits *ListenerLimits `json:"limits,omitempty"`

	// Timeouts bound the request timeouts of the routes on HTTP and HTTPS listeners:
	// the platform's default for routes that set none, and the longest a route may
	// ask for.
	// +optional
	Timeouts *ListenerTimeouts `json:"timeouts,omitempty"`
}

// ListenerTimeouts are the platform's bounds on routes' timeouts.request (GEP-2257
// durations, such as "30s" or "1m").
type ListenerTimeouts struct {
	// Request is the request timeout of routes that set none.
	// +optional
	Request *gwv1.Duration `json:"request,omitempty"`
	// MaxRequest is the longest request timeout a route may set. A route that asks for
	// more, or for none at all, gets MaxRequest; its backendRequest timeout is cut to
	// match.
	// +optional
	MaxRequest *gwv1.Duration `json:"maxRequest,omitempty"`
}

// ListenerLimits bound requests.
type ListenerLimits struct {
	// MaxRequestBodyBytes is the largest request body accepted; a larger one is answered
	// 413. It applies to every request, gRPC streams and uploads included.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxRequestBodyBytes *int64 `json:"maxRequestBodyBytes,omitempty"`
	// MaxConnections bounds the open client connections of the listener's port, on each
	// of the Gateway's addresses and per Portico instance; connections over it are
	// closed at once. Listeners of one port share it (the smallest applies).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	MaxConnections *int32 `json:"maxConnections,omitempty"`
}

// RateLimitPolicy is a token bucket per client address and listener.
type RateLimitPolicy struct {
	// RequestsPerSecond is the sustained rate.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	RequestsPerSecond int32 `json:"requestsPerSecond"`
	// Burst is how many requests a client may send at once; unset: RequestsPerSecond.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +optional
	Burst *int32 `json:"burst,omitempty"`
}

// ListenerTLSPolicy is the TLS a listener accepts.
type ListenerTLSPolicy struct {
	// MinVersion is the lowest TLS version accepted: "1.2" (the default without a
	// policy) or "1.3".
	// +kubebuilder:validation:Enum="1.2";"1.3"
	// +optional
	MinVersion *string `json:"minVersion,omitempty"`

	// CipherSuites are the TLS 1.2 cipher suites accepted, by IANA name (for example
	// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256): ECDHE suites with AES-GCM or
	// ChaCha20-Poly1305 only, since HTTP/2 refuses the others. TLS 1.3 suites are not
	// configurable. Unset: Go's secure defaults.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	CipherSuites []string `json:"cipherSuites,omitempty"`
}

// HSTSPolicy is the Strict-Transport-Security header's content.
type HSTSPolicy struct {
	// MaxAgeSeconds is how long browsers remember to use HTTPS only. 0 tells them to
	// forget it.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=63072000
	MaxAgeSeconds int32 `json:"maxAgeSeconds"`
	// IncludeSubDomains extends it to every subdomain.
	// +optional
	IncludeSubDomains bool `json:"includeSubDomains,omitempty"`
	// Preload asks for inclusion in browsers' preload lists; it needs
	// includeSubDomains and a maxAgeSeconds of at least a year (31536000).
	// +optional
	Preload bool `json:"preload,omitempty"`
}

// HTTPSRedirectPolicy is how plain HTTP is redirected.
type HTTPSRedirectPolicy struct {
	// StatusCode of the redirect: 301 (the default) or 308 for permanent, 302 or 307
	// while trying it out.
	// +kubebuilder:validation:Enum=301;302;307;308
	// +optional
	StatusCode *int32 `json:"statusCode,omitempty"`
	// Port the redirect points at; unset: 443 (left out of the URL).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port *int32 `json:"port,omitempty"`
}

// ListenerPolicyList is a list of ListenerPolicies.
//
// +kubebuilder:object:root=true
type ListenerPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ListenerPolicy `json:"items"`
}
