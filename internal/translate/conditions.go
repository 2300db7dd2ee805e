package translate

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// condition builds one condition; generation is the object's metadata.generation.
func condition(typ string, ok bool, reason string, generation int64, message string) metav1.Condition {
	status := metav1.ConditionFalse
	if ok {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
	}
}

// problems collects the reasons something is wrong, keeping the first reason as the
// condition's reason and joining every message.
type problems struct {
	reason   string
	messages []string
}

func (p *problems) add(reason, format string, args ...any) {
	if p.reason == "" {
		p.reason = reason
	}
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(p.messages, msg) {
		p.messages = append(p.messages, msg)
	}
}

// merge adds every problem of o.
func (p *problems) merge(o *problems) {
	if p.reason == "" {
		p.reason = o.reason
	}
	for _, m := range o.messages {
		if !slices.Contains(p.messages, m) {
			p.messages = append(p.messages, m)
		}
	}
}

func (p *problems) ok() bool { return p.reason == "" }

func (p *problems) message() string {
	switch len(p.messages) {
	case 0:
		return ""
	case 1:
		return p.messages[0]
	}
	msg := p.messages[0]
	for _, m := range p.messages[1:] {
		msg += "; " + m
	}
	return msg
}

// setCondition replaces the condition of the same type, or appends it.
func setCondition(conds []metav1.Condition, c metav1.Condition) []metav1.Condition {
	for i := range conds {
		if conds[i].Type == c.Type {
			conds[i] = c
			return conds
		}
	}
	return append(conds, c)
}
