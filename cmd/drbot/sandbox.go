package main

import (
	"errors"
	"io"
)

// cmdSandbox is being built (placeholder so the command table compiles).
func cmdSandbox(args []string, stdout, stderr io.Writer) error {
	return errors.New("drbot sandbox is not built yet")
}
