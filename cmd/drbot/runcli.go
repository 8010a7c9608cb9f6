package main

import (
	"errors"
	"io"
)

// cmdRun is being built (placeholder so the command table compiles).
func cmdRun(args []string, stdout, stderr io.Writer) error {
	return errors.New("drbot run is not built yet")
}
