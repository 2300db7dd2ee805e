package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-gw/portico/internal/admin"
	"github.com/portico-gw/portico/internal/translate"
)

func newStatusCommand() *cobra.Command {
	var adminAddress string
	cmd := &cobra.Command{
		Use:   "status [--admin-address ADDR]",
		Short: "Show a running Portico's Gateways, listeners and routes with their conditions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := &http.Client{Timeout: 5 * time.Second}
			resp, err := client.Get("http://" + adminAddress + "/status")
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("asking the admin API at %s: %w", adminAddress, err)}
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				return &exitError{code: 2, err: fmt.Errorf("admin API answered %s: %s", resp.Status, strings.TrimSpace(string(body)))}
			}
			var doc admin.StatusDocument
			if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("reading the admin API's answer: %w", err)}
			}
			problems := printStatus(cmd.OutOrStdout(), &doc)
			if problems {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&adminAddress, "admin-address", "127.0.0.1:19000", "address of the running Portico's admin API")
	return cmd
}

// printStatus renders the status document as tables and reports whether anything is
// wrong (an error, or a False Accepted/ResolvedRefs/Programmed condition).
func printStatus(w io.Writer, doc *admin.StatusDocument) bool {
	bad := false
	switch {
	case doc.Ready && doc.AppliedAt != nil:
		fmt.Fprintf(w, "Config applied at %s\n", doc.AppliedAt.Format(time.RFC3339))
	default:
		fmt.Fprintln(w, "No config applied yet")
		bad = true
	}
	for _, e := range doc.Errors {
		bad = true
		fmt.Fprintf(w, "ERROR (%s, %s): %s\n", e.Stage, e.Time.Format(time.RFC3339), e.Message)
	}
	st := doc.Status
	if st == nil {
		return bad
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tLISTENER\tACCEPTED\tPROGRAMMED\tRESOLVED\tROUTES\tDETAILS")
	for _, g := range st.Gateways {
		bad = printListenerRows(tw, g.Namespace+"/"+g.Name, g.Status.Conditions, g.Status.Listeners) || bad
	}
	for _, s := range st.ListenerSets {
		listeners := make([]gwv1.ListenerStatus, len(s.Status.Listeners))
		for i, l := range s.Status.Listeners {
			listeners[i] = gwv1.ListenerStatus(l)
		}
		bad = printListenerRows(tw, "ListenerSet "+s.Namespace+"/"+s.Name, s.Status.Conditions, listeners) || bad
	}
	tw.Flush()
	if len(st.Routes) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROUTE\tPARENT\tACCEPTED\tRESOLVED\tDETAILS")
		for _, r := range st.Routes {
			for _, p := range r.Status.Parents {
				parent := translate.ParentName(p.ParentRef)
				acc, _, res, detail := summarize(p.Conditions)
				bad = bad || acc == "False" || res == "False"
				fmt.Fprintf(tw, "%s %s/%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Namespace, r.Name, parent, acc, res, detail)
			}
		}
		tw.Flush()
	}
	if policies := slices.Concat(st.ListenerPolicies, st.BackendTLSPolicies); len(policies) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POLICY\tGATEWAY\tACCEPTED\tDETAILS")
		for _, p := range policies {
			for _, a := range p.Status.Ancestors {
				acc, _, res, detail := summarize(a.Conditions)
				bad = bad || acc == "False" || res == "False"
				fmt.Fprintf(tw, "%s %s/%s\t%s\t%s\t%s\n", p.Kind, p.Namespace, p.Name, translate.ParentName(a.AncestorRef), acc, detail)
			}
		}
		tw.Flush()
	}
	return bad
}

// printListenerRows prints a Gateway's or ListenerSet's row and one per listener, and
// reports whether any of them is not accepted, programmed or resolved.
func printListenerRows(tw io.Writer, name string, conds []metav1.Condition, listeners []gwv1.ListenerStatus) bool {
	acc, prog, res, detail := summarize(conds)
	bad := acc == "False" || prog == "False"
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, "-", acc, prog, res, "-", detail)
	for _, l := range listeners {
		acc, prog, res, detail := summarize(l.Conditions)
		bad = bad || acc == "False" || prog == "False" || res == "False"
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", name, l.Name, acc, prog, res, l.AttachedRoutes, detail)
	}
	return bad
}

// summarize returns the Accepted, Programmed and ResolvedRefs statuses and, for each
// condition that is not as it should be, "Type: Reason: message".
func summarize(conds []metav1.Condition) (accepted, programmed, resolved, detail string) {
	accepted, programmed, resolved = "-", "-", "-"
	var details []string
	for _, c := range conds {
		switch c.Type {
		case "Accepted":
			accepted = string(c.Status)
		case "Programmed":
			programmed = string(c.Status)
		case "ResolvedRefs":
			resolved = string(c.Status)
		}
		wrong := c.Status == metav1.ConditionFalse
		if c.Type == "Conflicted" || c.Type == "OverlappingTLSConfig" || c.Type == "PartiallyInvalid" {
			wrong = c.Status == metav1.ConditionTrue
		}
		if wrong {
			details = append(details, fmt.Sprintf("%s: %s: %s", c.Type, c.Reason, c.Message))
		}
	}
	return accepted, programmed, resolved, strings.Join(details, "; ")
}
