package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/liveroom/liveroom/auth"
)

func runToken(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	user := fs.String("user", "", "user id (required)")
	name := fs.String("name", "", "display name (default: the user id)")
	role := fs.String("role", "viewer", "viewer, host or moderator")
	rooms := fs.String("room", "*", "room the token allows, comma-separated; * for any")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	secret := fs.String("secret", envOr("LIVEROOM_SECRET", ""), "signing secret (env LIVEROOM_SECRET); empty uses the development secret")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		return fmt.Errorf("--user is required")
	}
	if *name == "" {
		*name = *user
	}
	key := *secret
	if key == "" {
		key = devSecret
	}
	tok, err := auth.Mint([]byte(key), auth.Claims{
		UserID:  *user,
		Name:    *name,
		Role:    auth.Role(*role),
		Rooms:   strings.Split(*rooms, ","),
		Expires: time.Now().Add(*ttl),
	})
	if err != nil {
		return err
	}
	fmt.Println(tok)
	return nil
}
