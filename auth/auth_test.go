package auth

import (
	"errors"
	"testing"
	"time"
)

func TestMintVerify(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Now()
	tok, err := Mint(secret, Claims{UserID: "u1", Name: "小红", Role: RoleHost, Rooms: []string{"r1"}, Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(secret, tok, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != "u1" || c.Name != "小红" || c.Role != RoleHost || !c.AllowsRoom("r1") || c.AllowsRoom("r2") {
		t.Fatalf("claims = %+v", c)
	}
	if !c.Expires.Equal(now.Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("expires = %v", c.Expires)
	}
}

func TestVerifyRejects(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Now()
	good := Claims{UserID: "u1", Role: RoleViewer, Rooms: []string{"*"}, Expires: now.Add(time.Minute)}
	tok, _ := Mint(secret, good)
	expired := good
	expired.Expires = now.Add(-time.Minute)
	expTok, _ := Mint(secret, expired)
	for _, tc := range []struct {
		name, token string
		secret      []byte
		want        error
	}{
		{"empty", "", secret, ErrMissing},
		{"garbage", "not.a.jwt", secret, ErrInvalid},
		{"wrong secret", tok, []byte("other"), ErrInvalid},
		{"expired", expTok, secret, ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Verify(tc.secret, tc.token, now); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if c, err := Verify(secret, tok, now); err != nil || !c.AllowsRoom("anything") {
		t.Fatalf("wildcard room: %v %+v", err, c)
	}
}

func TestMintRejectsBadClaims(t *testing.T) {
	for _, c := range []Claims{
		{UserID: "", Role: RoleViewer, Expires: time.Now().Add(time.Hour)},
		{UserID: "u", Role: "king", Expires: time.Now().Add(time.Hour)},
		{UserID: "u", Role: RoleViewer},
	} {
		if _, err := Mint([]byte("k"), c); err == nil {
			t.Errorf("Mint(%+v) succeeded", c)
		}
	}
}
