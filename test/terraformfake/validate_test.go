package terraformfake_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/drbot/drbot/test/terraformfake"
)

func TestValidateReportsTheModuleValidOrItsErrors(t *testing.T) {
	bin := terraformfake.Build(t)
	dir := t.TempDir()
	terraformfake.WriteModule(t, dir, module())
	tf, err := tfexec.NewTerraform(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if err := tf.SetEnv(map[string]string{"TF_DATA_DIR": data}); err != nil {
		t.Fatal(err)
	}
	if err := tf.Init(ctx(t), tfexec.Backend(false)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".terraform")); !os.IsNotExist(err) {
		t.Errorf("init with TF_DATA_DIR wrote .terraform in the module directory (stat: %v)", err)
	}
	v, err := tf.Validate(ctx(t))
	if err != nil || !v.Valid || v.ErrorCount != 0 {
		t.Fatalf("validate = %+v, %v; want valid", v, err)
	}

	m := module()
	m.ValidateErrors = []string{`Reference to undeclared resource "aws_vpc.main"`}
	terraformfake.WriteModule(t, dir, m)
	v, err = tf.Validate(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if v.Valid || v.ErrorCount != 1 || len(v.Diagnostics) != 1 || v.Diagnostics[0].Summary != m.ValidateErrors[0] {
		t.Errorf("validate of a broken module = %+v", v)
	}
}

func TestValidateNeedsInit(t *testing.T) {
	bin := terraformfake.Build(t)
	dir := t.TempDir()
	terraformfake.WriteModule(t, dir, module())
	tf, err := tfexec.NewTerraform(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tf.Validate(ctx(t)); err == nil {
		t.Error("validate before init succeeded")
	}
}
