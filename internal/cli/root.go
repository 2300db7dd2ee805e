// Package cli holds Portico's command line: one cobra command per subcommand.
package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra without printing usage.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Main runs the command line and returns the process exit code: 0 on success, 1 when
// the command ran and found problems, 2 for usage and input errors.
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "portico:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "portico:", err)
	return 2
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "portico",
		Short:         "Portico is a Kubernetes Gateway API gateway: control plane and data plane in one binary",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newRunCommand(), newControllerCommand(), newTranslateCommand(), newStatusCommand(), newEchoCommand(), newVersionCommand())
	return root
}
