package main

import (
	"errors"
	"io"
)

// cmdCheck is being built (placeholder so the command table compiles).
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	return errors.New("drbot check is not built yet")
}
