package translate

import (
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/resource"
)

func TestAddressOutsidePoolIsNotUsable(t *testing.T) {
	snap := resource.NewSnapshot()
	_, _ = snap.Add(&gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "portico"}, Spec: gwv1.GatewayClassSpec{ControllerName: DefaultControllerName}})
	for name, addr := range map[string]string{"inside": "127.0.10.7", "outside": "10.1.2.3"} {
		_, _ = snap.Add(&gwv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "infra"},
			Spec: gwv1.GatewaySpec{
				GatewayClassName: "portico",
				Addresses:        []gwv1.GatewaySpecAddress{{Value: addr}},
				Listeners:        []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}},
			},
		})
	}
	cfg, st := TranslateWith(snap, Options{AddressPool: netip.MustParsePrefix("127.0.10.0/24")})
	programmed := map[string]metav1.Condition{}
	for _, g := range st.Gateways {
		for _, c := range g.Status.Conditions {
			if c.Type == "Programmed" {
				programmed[g.Name] = c
			}
		}
	}
	if c := programmed["inside"]; c.Status != metav1.ConditionTrue {
		t.Errorf("inside the pool: Programmed %s/%s %q", c.Status, c.Reason, c.Message)
	}
	c := programmed["outside"]
	if c.Status != metav1.ConditionFalse || c.Reason != string(gwv1.GatewayReasonAddressNotUsable) || !strings.Contains(c.Message, "127.0.10.0/24") {
		t.Errorf("outside the pool: Programmed %s/%s %q, want False/AddressNotUsable naming the pool", c.Status, c.Reason, c.Message)
	}
	if len(cfg.Gateways) != 1 || cfg.Gateways[0].Name != "infra/inside" {
		t.Errorf("gateways in the config: %+v, want only infra/inside", cfg.Gateways)
	}
}

func TestAddressProblemsAndUnacceptedClass(t *testing.T) {
	snap := resource.NewSnapshot()
	_, _ = snap.Add(&gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "portico"}, Spec: gwv1.GatewayClassSpec{ControllerName: DefaultControllerName}})
	_, _ = snap.Add(&gwv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Spec: gwv1.GatewayClassSpec{
		ControllerName: DefaultControllerName,
		ParametersRef:  &gwv1.ParametersReference{Group: "example.com", Kind: "Params", Name: "p"},
	}})
	for name, class := range map[string]string{"poolless": "portico", "orphan": "broken"} {
		_, _ = snap.Add(&gwv1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "infra", Generation: 3},
			Spec: gwv1.GatewaySpec{GatewayClassName: gwv1.ObjectName(class),
				Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}}},
		})
	}
	cfg, st := TranslateWith(snap, Options{AddressProblems: map[string]AddressProblem{
		"infra/poolless": {Reason: "AddressNotAssigned", Message: "no free address left in the pool"},
	}})
	if len(cfg.Gateways) != 0 {
		t.Fatalf("gateways in the config: %+v, want none", cfg.Gateways)
	}
	conds := map[string]map[string]metav1.Condition{}
	for _, g := range st.Gateways {
		conds[g.Name] = map[string]metav1.Condition{}
		for _, c := range g.Status.Conditions {
			conds[g.Name][c.Type] = c
		}
	}
	if c := conds["poolless"]["Programmed"]; c.Status != metav1.ConditionFalse || c.Reason != "AddressNotAssigned" || !strings.Contains(c.Message, "no free address") {
		t.Errorf("poolless: Programmed %s/%s %q", c.Status, c.Reason, c.Message)
	}
	if c := conds["orphan"]["Accepted"]; c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "GatewayClass broken is not accepted") || c.ObservedGeneration != 3 {
		t.Errorf("orphan: Accepted %s/%s %q (generation %d)", c.Status, c.Reason, c.Message, c.ObservedGeneration)
	}
	if c := conds["orphan"]["Programmed"]; c.Status != metav1.ConditionFalse {
		t.Errorf("orphan: Programmed %s, want False", c.Status)
	}
}
