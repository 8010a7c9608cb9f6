package terraformfake

import (
	"path/filepath"
)

var validateFlags = flagSpec{"no-color": false, "json": false}

// dataDir is where init keeps providers: TF_DATA_DIR when set (as
// Terraform does), else .terraform in the module directory.
func (r *runner) dataDir() string {
	if d := r.env["TF_DATA_DIR"]; d != "" {
		return d
	}
	return filepath.Join(r.dir, ".terraform")
}

// validate answers `validate -no-color -json` in the shape
// terraform-exec parses (tfjson.ValidateOutput); an invalid module exits 1
// like Terraform.
func (r *runner) validate(args []string) error {
	p, err := parseFlags("validate", args, validateFlags)
	if err != nil {
		return err
	}
	if _, ok := p.flags["json"]; !ok || len(p.positional) > 0 {
		return unexpected("validate: only `validate [-no-color] -json` is supported")
	}
	m, err := r.module()
	if err != nil {
		return err
	}
	diags := []map[string]any{}
	for _, e := range m.ValidateErrors {
		diags = append(diags, map[string]any{"severity": "error", "summary": e, "detail": ""})
	}
	if err := writeJSON(r.out, map[string]any{
		"format_version": "1.0", "valid": len(diags) == 0, "error_count": len(diags), "warning_count": 0, "diagnostics": diags,
	}); err != nil {
		return err
	}
	if len(diags) > 0 {
		return &exitError{code: 1}
	}
	return nil
}
