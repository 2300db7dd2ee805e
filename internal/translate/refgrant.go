package translate

import (
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/resource"
)

// refFrom and refTo describe a cross-namespace reference for ReferenceGrant checks.
type refFrom struct {
	group, kind, namespace string
}

type refTo struct {
	group, kind, namespace, name string
}

// referenceGrants indexes ReferenceGrants by the namespace they live in (the namespace
// of the referenced objects).
type referenceGrants map[string][]*gwv1.ReferenceGrant

func indexReferenceGrants(snap *resource.Snapshot) referenceGrants {
	idx := referenceGrants{}
	for _, g := range resource.Sorted(snap.ReferenceGrants) {
		idx[g.Namespace] = append(idx[g.Namespace], g)
	}
	return idx
}

// allows reports whether a reference from an object in from.namespace to to is
// permitted: references within one namespace always are, others need a ReferenceGrant
// in the target namespace naming both sides.
func (idx referenceGrants) allows(from refFrom, to refTo) bool {
	if from.namespace == to.namespace {
		return true
	}
	for _, g := range idx[to.namespace] {
		if grantMatches(g, from, to) {
			return true
		}
	}
	return false
}

func grantMatches(g *gwv1.ReferenceGrant, from refFrom, to refTo) bool {
	fromOK := false
	for _, f := range g.Spec.From {
		if string(f.Group) == from.group && string(f.Kind) == from.kind && string(f.Namespace) == from.namespace {
			fromOK = true
			break
		}
	}
	if !fromOK {
		return false
	}
	for _, t := range g.Spec.To {
		if string(t.Group) != to.group || string(t.Kind) != to.kind {
			continue
		}
		if t.Name == nil || *t.Name == "" || string(*t.Name) == to.name {
			return true
		}
	}
	return false
}
