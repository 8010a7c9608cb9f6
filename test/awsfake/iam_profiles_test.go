package awsfake_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/drbot/drbot/test/awsfake"
)

func TestInstanceProfilesHoldTheirRoleUntilRemoved(t *testing.T) {
	srv := awsfake.New(t, awsfake.Options{})
	c := iam.NewFromConfig(srv.Config("us-east-1", "AKIDPROFILES000001", "made-up-secret"))
	ctx := context.Background()
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	if _, err := c.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("node"), AssumeRolePolicyDocument: aws.String(trust)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateInstanceProfile(ctx, &iam.CreateInstanceProfileInput{InstanceProfileName: aws.String("node-profile")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddRoleToInstanceProfile(ctx, &iam.AddRoleToInstanceProfileInput{InstanceProfileName: aws.String("node-profile"), RoleName: aws.String("node")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.ListInstanceProfilesForRole(ctx, &iam.ListInstanceProfilesForRoleInput{RoleName: aws.String("node")})
	if err != nil || len(out.InstanceProfiles) != 1 || aws.ToString(out.InstanceProfiles[0].Roles[0].RoleName) != "node" {
		t.Fatalf("profiles for role: %+v %v", out, err)
	}
	var conflict *iamtypes.DeleteConflictException
	if _, err := c.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String("node")}); !errors.As(err, &conflict) {
		t.Fatalf("deleting a role still in a profile: %v, want DeleteConflict", err)
	}
	if _, err := c.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: aws.String("node-profile")}); !errors.As(err, &conflict) {
		t.Fatalf("deleting a profile that holds a role: %v, want DeleteConflict", err)
	}
	if _, err := c.RemoveRoleFromInstanceProfile(ctx, &iam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: aws.String("node-profile"), RoleName: aws.String("node")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteInstanceProfile(ctx, &iam.DeleteInstanceProfileInput{InstanceProfileName: aws.String("node-profile")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteRole(ctx, &iam.DeleteRoleInput{RoleName: aws.String("node")}); err != nil {
		t.Fatal(err)
	}
	if u := srv.Unexpected(); len(u) != 0 {
		t.Errorf("unexpected requests: %v", u)
	}
}
