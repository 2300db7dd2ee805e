package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/portico-gw/portico/internal/resource"
	"github.com/portico-gw/portico/internal/translate"
)

func newTranslateCommand() *cobra.Command {
	var (
		files        []string
		output       string
		opts         translate.Options
		allowProblem bool
	)
	cmd := &cobra.Command{
		Use:   "translate -f FILE|DIR [-f ...]",
		Short: "Translate Gateway API YAML offline and print status (and the routing config)",
		Long: `translate reads Gateway API objects (and the Services, EndpointSlices, Secrets,
ReferenceGrants and Portico Backends they refer to) from files or folders, and prints the
status Portico would give every object it owns. With -o ir it prints the routing config
the data plane would serve, with -o all both.

The exit code is 1 when any object is not Accepted or has unresolved references, and 2
when the input cannot be read: app teams can run it in CI before they merge a route.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return &exitError{code: 2, err: fmt.Errorf("no input: pass -f FILE or -f DIR")}
			}
			snap, err := resource.LoadPaths(files...)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			cfg, status := translate.TranslateWith(snap, opts)
			var doc any
			switch output {
			case "status":
				doc = status
			case "ir":
				doc = cfg.Redacted()
			case "all":
				doc = map[string]any{"status": status, "ir": cfg.Redacted()}
			default:
				return &exitError{code: 2, err: fmt.Errorf("-o %q: want status, ir or all", output)}
			}
			out, err := yaml.Marshal(doc)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if _, err := cmd.OutOrStdout().Write(out); err != nil {
				return err
			}
			problems := status.Problems()
			if len(problems) == 0 {
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d problem(s):\n", len(problems))
			for _, p := range problems {
				fmt.Fprintln(cmd.ErrOrStderr(), "  "+p.String())
			}
			if allowProblem {
				return nil
			}
			return &exitError{code: 1}
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "YAML/JSON file or folder to read (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "status", "what to print: status, ir or all")
	cmd.Flags().StringVar(&opts.ControllerName, "controller-name", translate.DefaultControllerName, "GatewayClass controllerName to serve")
	cmd.Flags().BoolVar(&opts.AllowExternalNameServices, "allow-external-name-services", false, "let routes use ExternalName Services")
	cmd.Flags().BoolVar(&allowProblem, "exit-zero", false, "exit 0 even when objects have problems")
	return cmd
}
