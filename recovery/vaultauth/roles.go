package vaultauth

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/drbot/drbot/recovery"
)

// deprecatedFields are role fields Vault still echoes on read when a role
// was written with them; the token_* field named here carries the value.
var deprecatedFields = map[string]string{
	"policies":    "token_policies",
	"bound_cidrs": "token_bound_cidrs",
	"ttl":         "token_ttl",
	"max_ttl":     "token_max_ttl",
	"period":      "token_period",
	"num_uses":    "token_num_uses",
}

// RoleBody is what to write to copy a role as read from Vault: the same
// fields, with deprecated aliases folded into their token_* fields (writing
// both would make the alias vanish on the copy, so it would never read back
// equal), and token_type "default" (the unset value) left out, so a role
// created from it gets Vault's default type.
func RoleBody(read map[string]any) map[string]any {
	out := make(map[string]any, len(read))
	for k, v := range read {
		if modern, ok := deprecatedFields[k]; ok {
			if _, has := read[modern]; !has {
				out[modern] = v
			}
			continue
		}
		if k == "token_type" && v == "default" {
			continue
		}
		out[k] = v
	}
	return out
}

// SameRole reports whether two roles as read from Vault grant the same.
func SameRole(a, b map[string]any) bool {
	return reflect.DeepEqual(RoleBody(a), RoleBody(b))
}

type roleCounts struct{ copied, present int }

// copyRoles copies every role of auth/<source> to auth/<mount>, skipping
// the ones already equal.
func (a *Auth) copyRoles(ctx context.Context, sc *recovery.StepContext, source, mount string) (roleCounts, error) {
	list, err := a.vc.Logical().ListWithContext(ctx, "auth/"+source+"/role")
	if err != nil {
		return roleCounts{}, classifyVault(fmt.Errorf("listing roles of auth/%s: %w", source, err))
	}
	var names []string
	if list != nil {
		keys, _ := list.Data["keys"].([]any)
		for _, k := range keys {
			if s, ok := k.(string); ok {
				names = append(names, s)
			}
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		sc.Progress("auth/%s has no roles to copy", source)
		return roleCounts{}, nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		n        roleCounts
		firstErr error
	)
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range min(a.opts.Concurrency, len(names)) {
		wg.Go(func() {
			for name := range jobs {
				res, err := a.copyRole(ctx, source, mount, name)
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = err
						cancel()
					}
				case res == roleCopied:
					n.copied++
				case res == rolePresent:
					n.present++
				}
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	tick := time.NewTicker(a.opts.ProgressEvery)
	defer tick.Stop()
	go func() {
		defer close(jobs)
		for _, name := range names {
			select {
			case jobs <- name:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-done:
			if firstErr != nil {
				return n, firstErr
			}
			return n, ctx.Err()
		case <-tick.C:
			mu.Lock()
			c, p := n.copied, n.present
			mu.Unlock()
			sc.Progress("copying roles auth/%s → auth/%s: %d of %d done", source, mount, c+p, len(names))
		}
	}
}

type roleResult int

const (
	roleCopied roleResult = iota
	rolePresent
	roleGone // deleted from the source since the list
)

// copyRole copies one role unless the DR mount already has it equal.
func (a *Auth) copyRole(ctx context.Context, source, mount, name string) (roleResult, error) {
	src, err := a.vc.Logical().ReadWithContext(ctx, "auth/"+source+"/role/"+name)
	if err != nil {
		return 0, classifyVault(fmt.Errorf("reading role %q of auth/%s: %w", name, source, err))
	}
	if src == nil || src.Data == nil {
		return roleGone, nil
	}
	dst, err := a.vc.Logical().ReadWithContext(ctx, "auth/"+mount+"/role/"+name)
	if err != nil {
		return 0, classifyVault(fmt.Errorf("reading role %q of auth/%s: %w", name, mount, err))
	}
	if dst != nil && SameRole(src.Data, dst.Data) {
		return rolePresent, nil
	}
	body := RoleBody(src.Data)
	if dst != nil && src.Data["token_type"] == "default" && dst.Data["token_type"] != "default" {
		// An update without token_type keeps the copy's type: say it.
		body["token_type"] = "default"
	}
	if err := a.write(ctx, "auth/"+mount+"/role/"+name, body); err != nil {
		return 0, fmt.Errorf("copying role %q: %w", name, err)
	}
	return roleCopied, nil
}
