package translate

import (
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/resource"
)

// classState is an owned GatewayClass and whether Gateways of it are served.
type classState struct {
	accepted bool
	status   gwv1.GatewayClassStatus
}

// SupportedFeatures are the Gateway API features Portico implements, as reported in
// GatewayClass status (sorted, as the API asks).
var SupportedFeatures = []gwv1.FeatureName{
	"BackendTLSPolicy",
	"BackendTLSPolicySANValidation",
	"GRPCRoute",
	"GRPCRouteNamedRouteRule",
	"Gateway",
	"GatewayAddressEmpty",
	"GatewayBackendClientCertificate",
	"GatewayFrontendClientCertificateValidation",
	"GatewayFrontendClientCertificateValidationInsecureFallback",
	"GatewayHTTPListenerIsolation",
	"GatewayHTTPSListenerDetectMisdirectedRequests",
	"GatewayPort8080",
	"GatewayStaticAddresses",
	"HTTPRoute",
	"HTTPRoute303RedirectStatusCode",
	"HTTPRoute307RedirectStatusCode",
	"HTTPRoute308RedirectStatusCode",
	"HTTPRouteBackendProtocolH2C",
	"HTTPRouteBackendProtocolWebSocket",
	"HTTPRouteBackendRequestHeaderModification",
	"HTTPRouteBackendTimeout",
	"HTTPRouteCORS",
	"HTTPRouteDestinationPortMatching",
	"HTTPRouteHostRewrite",
	"HTTPRouteMethodMatching",
	"HTTPRouteNamedRouteRule",
	"HTTPRouteParentRefPort",
	"HTTPRoutePathRedirect",
	"HTTPRoutePathRewrite",
	"HTTPRoutePortRedirect",
	"HTTPRouteQueryParamMatching",
	"HTTPRouteRequestMirror",
	"HTTPRouteRequestMultipleMirrors",
	"HTTPRouteRequestPercentageMirror",
	"HTTPRouteRequestTimeout",
	"HTTPRouteResponseHeaderModification",
	"HTTPRouteRetry",
	"HTTPRouteRetryBackendTimeout",
	"HTTPRouteRetryConnectionError",
	"HTTPRouteSchemeRedirect",
	"ListenerSet",
	"ReferenceGrant",
	"TCPRoute",
	"TLSRoute",
	"TLSRouteModeMixed",
	"TLSRouteModeTerminate",
	"UDPRoute",
}

func (t *translator) translateGatewayClasses() {
	for _, gc := range resource.Sorted(t.snap.GatewayClasses) {
		if string(gc.Spec.ControllerName) != t.opts.ControllerName {
			continue
		}
		c := &classState{accepted: true}
		if ref := gc.Spec.ParametersRef; ref != nil {
			c.accepted = false
			c.status.Conditions = append(c.status.Conditions, condition(
				string(gwv1.GatewayClassConditionStatusAccepted), false,
				string(gwv1.GatewayClassReasonInvalidParameters), gc.Generation,
				"parametersRef "+groupKind(string(ref.Group), string(ref.Kind))+" "+ref.Name+
					": Portico reads no GatewayClass parameters; remove parametersRef"))
		} else {
			c.status.Conditions = append(c.status.Conditions, condition(
				string(gwv1.GatewayClassConditionStatusAccepted), true,
				string(gwv1.GatewayClassReasonAccepted), gc.Generation,
				"GatewayClass is accepted by "+t.opts.ControllerName))
		}
		c.status.Conditions = append(c.status.Conditions, condition(
			string(gwv1.GatewayClassConditionStatusSupportedVersion), true,
			string(gwv1.GatewayClassReasonSupportedVersion), gc.Generation,
			"Gateway API bundle version "+BundleVersion+" is supported"))
		for _, f := range SupportedFeatures {
			c.status.SupportedFeatures = append(c.status.SupportedFeatures, gwv1.SupportedFeature{Name: f})
		}
		t.classes[gc.Name] = c
	}
}

// BundleVersion is the Gateway API release Portico is built against.
const BundleVersion = "v1.6.3"
