// Command terraform is the stand-in Terraform executable of package
// terraformfake; tests build it with terraformfake.Build.
package main

import (
	"fmt"
	"os"

	"github.com/drbot/drbot/test/terraformfake"
)

func main() {
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "terraformfake:", err)
		os.Exit(1)
	}
	os.Exit(terraformfake.Main(os.Args[1:], dir, os.Environ(), os.Stdout, os.Stderr))
}
