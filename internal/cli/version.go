package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/portico-gw/portico/internal/translate"
)

// Version and Commit are set at build time with -ldflags "-X ...".
var (
	Version = "dev"
	Commit  = ""
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Portico's version, commit, Go version and Gateway API bundle version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			commit := Commit
			if commit == "" {
				commit = vcsRevision()
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "portico %s\ncommit: %s\ngo: %s\ngateway-api: %s\n",
				Version, commit, runtime.Version(), translate.BundleVersion)
			return err
		},
	}
}

// vcsRevision reads the commit Go stamped into the binary, if any.
func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return "unknown"
}
