package translate

import (
	"fmt"
	"maps"
	"reflect"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/portico-gw/portico/internal/resource"
)

// TestRefreshEndpointsMatchesFullTranslation changes EndpointSlices of some Services and
// checks that refreshing their endpoints gives the config a whole translation gives, and
// that the other clusters are shared, not copied.
func TestRefreshEndpointsMatchesFullTranslation(t *testing.T) {
	snap := scaleSnapshot(50, 5)
	before, _ := Translate(snap)

	next := *snap
	next.EndpointSlices = maps.Clone(snap.EndpointSlices)
	var changed []resource.Key
	for i, name := range []string{"app-00003", "app-00017"} {
		ns := fmt.Sprintf("team-%03d", []int{3, 17}[i]%5)
		k := resource.Key{Namespace: ns, Name: name + "-1"}
		s := next.EndpointSlices[k].DeepCopy()
		s.Endpoints = append(s.Endpoints[:1], discoveryv1.Endpoint{Addresses: []string{"10.9.9.9"}},
			discoveryv1.Endpoint{Addresses: []string{"10.9.9.10"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}})
		next.EndpointSlices[k] = s
		changed = append(changed, resource.Key{Namespace: ns, Name: name})
	}
	// A Service that does not exist, and one whose slices did not change.
	changed = append(changed, resource.Key{Namespace: "nowhere", Name: "x"}, resource.Key{Namespace: "team-000", Name: "app-00000"})

	refreshed, ok := RefreshEndpoints(before, &next, changed)
	if !ok {
		t.Fatal("RefreshEndpoints reported no change")
	}
	full, _ := Translate(&next)
	if !reflect.DeepEqual(refreshed, full) {
		t.Fatalf("refreshed config differs from a full translation:\nrefreshed clusters %+v\nfull clusters %+v", refreshed.Clusters, full.Clusters)
	}
	if reflect.DeepEqual(before.Clusters, full.Clusters) {
		t.Fatal("the change made no difference: the test changes nothing")
	}
	if &refreshed.Gateways[0] != &before.Gateways[0] {
		t.Error("gateways were copied; only clusters should be")
	}
	// The input config is left as it was.
	again, _ := Translate(snap)
	if !reflect.DeepEqual(before, again) {
		t.Error("RefreshEndpoints modified its input config")
	}
	if _, ok := RefreshEndpoints(full, &next, changed); ok {
		t.Error("refreshing an up-to-date config reported a change")
	}
}
