// Command portico is the Portico gateway. All behaviour lives in internal/cli.
package main

import (
	"os"

	"github.com/portico-gw/portico/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
