package chart

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// grant is one permission: verb on group/resource (one named object if name is set),
// cluster-wide (namespace "") or in one namespace.
type grant struct {
	namespace, group, resource, name, verb string
}

func (g grant) String() string {
	where := "cluster-wide"
	if g.namespace != "" {
		where = "in namespace " + g.namespace
	}
	res := g.resource
	if g.group != "" {
		res += "." + g.group
	}
	if g.name != "" {
		res += "/" + g.name
	}
	return fmt.Sprintf("%s %s %s", g.verb, res, where)
}

// neededGrants is what "portico controller" does with the API server, and so exactly
// what its ServiceAccount must be allowed: the kinds internal/provider/kubernetes
// watches (provider.go, watched), the status it writes (status.go: Status().Update of
// the kinds it owns status on), leader election (election.go: client-go's LeaseLock
// gets, creates and updates one Lease in its namespace). It records no Events.
func neededGrants(namespace, leaseName string) []grant {
	var out []grant
	read := func(group string, resources ...string) {
		for _, r := range resources {
			for _, v := range []string{"get", "list", "watch"} {
				out = append(out, grant{"", group, r, "", v})
			}
		}
	}
	read("gateway.networking.k8s.io", "gatewayclasses", "gateways", "listenersets", "httproutes", "grpcroutes",
		"tlsroutes", "tcproutes", "udproutes", "referencegrants", "backendtlspolicies")
	read("", "services", "secrets", "configmaps", "namespaces")
	read("discovery.k8s.io", "endpointslices")
	read("gateway.portico.dev", "backends", "listenerpolicies")
	out = append(out, grant{"", "gateway.portico.dev", "listenerpolicies/status", "", "get"},
		grant{"", "gateway.portico.dev", "listenerpolicies/status", "", "update"})
	for _, r := range []string{"gatewayclasses", "gateways", "listenersets", "httproutes", "grpcroutes", "tlsroutes",
		"tcproutes", "udproutes", "backendtlspolicies"} {
		out = append(out, grant{"", "gateway.networking.k8s.io", r + "/status", "", "get"},
			grant{"", "gateway.networking.k8s.io", r + "/status", "", "update"})
	}
	out = append(out,
		grant{namespace, "coordination.k8s.io", "leases", "", "create"},
		grant{namespace, "coordination.k8s.io", "leases", leaseName, "get"},
		grant{namespace, "coordination.k8s.io", "leases", leaseName, "update"},
	)
	return out
}

// grantsOf is what a rendering's RBAC objects give the ServiceAccount namespace/sa,
// rule by rule, with the problems found on the way: wildcards, write verbs on anything
// but a status subresource cluster-wide, Leases outside a namespaced Role, bindings of
// other subjects or of roles the chart does not render.
func grantsOf(objs []*unstructured.Unstructured, namespace, sa string) ([]grant, []string) {
	var problems []string
	roles := map[string][]rbacv1.PolicyRule{} // by "ClusterRole/name" or "Role/namespace/name"
	var bindings []binding
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole", "Role":
			var r rbacv1.ClusterRole // Role has the same rules field
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
				problems = append(problems, fmt.Sprintf("%s %s: %v", o.GetKind(), o.GetName(), err))
				continue
			}
			key := "ClusterRole/" + o.GetName()
			if o.GetKind() == "Role" {
				key = "Role/" + o.GetNamespace() + "/" + o.GetName()
			}
			if r.AggregationRule != nil {
				problems = append(problems, key+": aggregation rules grant what other roles say")
			}
			roles[key] = r.Rules
		case "ClusterRoleBinding", "RoleBinding":
			var b rbacv1.RoleBinding
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
				problems = append(problems, fmt.Sprintf("%s %s: %v", o.GetKind(), o.GetName(), err))
				continue
			}
			key := b.RoleRef.Kind + "/" + b.RoleRef.Name
			if b.RoleRef.Kind == "Role" {
				key = "Role/" + o.GetNamespace() + "/" + b.RoleRef.Name
			}
			bindings = append(bindings, binding{role: key, namespace: o.GetNamespace(), subjects: b.Subjects})
		}
	}
	var out []grant
	for _, b := range bindings {
		rules, ok := roles[b.role]
		if !ok {
			problems = append(problems, fmt.Sprintf("a binding refers to %s, which the chart does not render", b.role))
			continue
		}
		for _, s := range b.subjects {
			if s.Kind != "ServiceAccount" || s.Name != sa || s.Namespace != namespace {
				problems = append(problems, fmt.Sprintf("%s is bound to %s %s/%s, not only to the ServiceAccount %s/%s", b.role, s.Kind, s.Namespace, s.Name, namespace, sa))
			}
		}
		// A RoleBinding grants in its own namespace (also when it binds a ClusterRole);
		// a ClusterRoleBinding has none: cluster-wide.
		ns := b.namespace
		for i, r := range rules {
			where := fmt.Sprintf("%s rule %d", b.role, i+1)
			for _, field := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs} {
				if slices.ContainsFunc(field, func(s string) bool { return strings.Contains(s, "*") }) {
					problems = append(problems, where+": a wildcard")
				}
			}
			if len(r.NonResourceURLs) > 0 {
				problems = append(problems, where+": non-resource URLs")
			}
			names := r.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					if res == "leases" && ns == "" {
						problems = append(problems, where+": Leases granted cluster-wide (they belong in a Role of the release namespace)")
					}
					for _, v := range r.Verbs {
						status := strings.HasSuffix(res, "/status")
						if ns == "" && !status && !slices.Contains([]string{"get", "list", "watch"}, v) {
							problems = append(problems, fmt.Sprintf("%s: %s %s cluster-wide: only status may be written cluster-wide", where, v, res))
						}
						if status && !slices.Contains([]string{"get", "update"}, v) {
							problems = append(problems, fmt.Sprintf("%s: %s %s: status needs get and update only", where, v, res))
						}
						for _, n := range names {
							out = append(out, grant{ns, g, res, n, v})
						}
					}
				}
			}
		}
	}
	return out, problems
}

// binding is a RoleBinding or ClusterRoleBinding: which role it binds, in which
// namespace ("" for cluster-wide), to whom.
type binding struct {
	role, namespace string
	subjects        []rbacv1.Subject
}

// compareGrants lists what have grants beyond want (not least privilege) and what it
// lacks (the controller would fail).
func compareGrants(have, want []grant) (extra, missing []string) {
	hs, ws := map[grant]bool{}, map[grant]bool{}
	for _, g := range have {
		hs[g] = true
	}
	for _, g := range want {
		ws[g] = true
	}
	for g := range hs {
		if !ws[g] {
			extra = append(extra, g.String())
		}
	}
	for g := range ws {
		if !hs[g] {
			missing = append(missing, g.String())
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	return extra, missing
}
