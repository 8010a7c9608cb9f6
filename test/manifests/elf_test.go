package manifests

import (
	"debug/elf"
	"testing"
)

// elfInterpreter is the PT_INTERP of an ELF file: "" for a static binary.
func elfInterpreter(t *testing.T, path string) string {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("reading %s as ELF: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			buf := make([]byte, p.Filesz)
			if _, err := p.ReadAt(buf, 0); err != nil {
				t.Fatalf("reading the interpreter of %s: %v", path, err)
			}
			return string(buf)
		}
	}
	return ""
}
