package translate

import (
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/portico-gw/portico/internal/ir"
	"github.com/portico-gw/portico/internal/resource"
)

// RefreshEndpoints returns cfg with the endpoints of the clusters of the given Services
// recomputed from snap's EndpointSlices, and everything else shared with cfg. It is
// what an EndpointSlice change needs, without translating everything again: only
// endpoints depend on EndpointSlices (no condition does), and a cluster's name says
// which Service port it serves ("service/ns/name/port", possibly with a suffix).
//
// cfg must be the translation of a snapshot that differs from snap only in
// EndpointSlices. The second result says whether any cluster changed.
func RefreshEndpoints(cfg *ir.Config, snap *resource.Snapshot, services []resource.Key) (*ir.Config, bool) {
	if len(services) == 0 {
		return cfg, false
	}
	want := map[resource.Key]bool{}
	for _, k := range services {
		want[k] = true
	}
	b := newBackendResolver(snap, nil)
	var clusters []ir.Cluster
	for i, c := range cfg.Clusters {
		key, port, ok := serviceCluster(c.Name)
		if !ok || !want[key] || c.Invalid != "" {
			continue
		}
		svc := snap.Services[key]
		if svc == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		idx := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port })
		if idx < 0 {
			continue
		}
		eps := b.endpoints(key, svc.Spec.Ports[idx])
		if slices.Equal(eps, c.Endpoints) {
			continue
		}
		if clusters == nil {
			clusters = slices.Clone(cfg.Clusters)
		}
		clusters[i].Endpoints = eps
	}
	if clusters == nil {
		return cfg, false
	}
	out := *cfg
	out.Clusters = clusters
	return &out, true
}

// serviceCluster parses a Service cluster's name: "service/ns/name/port[/suffix]".
func serviceCluster(name string) (resource.Key, int32, bool) {
	parts := strings.Split(name, "/")
	if len(parts) < 4 || parts[0] != "service" {
		return resource.Key{}, 0, false
	}
	port, err := strconv.ParseInt(parts[3], 10, 32)
	if err != nil {
		return resource.Key{}, 0, false
	}
	return resource.Key{Namespace: parts[1], Name: parts[2]}, int32(port), true
}
