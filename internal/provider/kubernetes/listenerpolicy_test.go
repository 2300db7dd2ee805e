package kubernetes

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/api/v1alpha1"
	"github.com/portico-gw/portico/internal/translate"
)

// TestListenerPolicyStatus: the provider watches ListenerPolicies and writes their
// status on the API server, per Gateway they target, and again when they change.
func TestListenerPolicyStatus(t *testing.T) {
	const controller = "portico.dev/test-listenerpolicy"
	ctx := context.Background()
	c := newClient(t)
	startProvider(t, testEnv.Config, Options{
		Translate:   translate.Options{ControllerName: controller},
		AddressPool: pool("127.0.29.0/28"),
	})
	pol := &v1alpha1.ListenerPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "lp-infra", Name: "defaults"},
		Spec: v1alpha1.ListenerPolicySpec{
			TargetRefs: []gwv1.LocalPolicyTargetReferenceWithSectionName{{LocalPolicyTargetReference: gwv1.LocalPolicyTargetReference{
				Group: gwv1.GroupName, Kind: "Gateway", Name: "shared"}}},
			HSTS: &v1alpha1.HSTSPolicy{MaxAgeSeconds: 600},
		},
	}
	create(t, c, namespace("lp-infra"), gatewayClass("lp", controller), gateway("lp-infra", "shared", "lp", 8080), pol)
	policyCondition := func(status metav1.ConditionStatus, reason string) func() error {
		return func() error {
			var got v1alpha1.ListenerPolicy
			if err := c.Get(ctx, client.ObjectKeyFromObject(pol), &got); err != nil {
				return err
			}
			if len(got.Status.Ancestors) != 1 || got.Status.Ancestors[0].AncestorRef.Name != "shared" || string(got.Status.Ancestors[0].ControllerName) != controller {
				return fmt.Errorf("ancestors = %+v, want the Gateway shared", got.Status.Ancestors)
			}
			conds := got.Status.Ancestors[0].Conditions
			if len(conds) == 0 || conds[0].ObservedGeneration != got.Generation {
				return fmt.Errorf("conditions %+v are not for generation %d", conds, got.Generation)
			}
			return wantCondition(conds, "Accepted", status, reason)
		}
	}
	eventually(t, 20*time.Second, "ListenerPolicy accepted", policyCondition(metav1.ConditionTrue, "Accepted"))
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur v1alpha1.ListenerPolicy
		if err := c.Get(ctx, client.ObjectKeyFromObject(pol), &cur); err != nil {
			return err
		}
		cur.Spec.HSTS.Preload = true // without includeSubDomains and a year: invalid
		return c.Update(ctx, &cur)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "ListenerPolicy refused", policyCondition(metav1.ConditionFalse, "Invalid"))
}
