// Package auth mints and checks liveroom tokens: HS256 JWTs that say who a user is,
// which role they have and which rooms they may join.
//
// The gateway checks a token at join, the media service checks one on WHIP/WHEP, and
// `liveroom token` and the load generator mint them. One secret is shared by every
// process of a deployment. The claims are documented in docs/protocol.md.
package auth

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a user may do in a room.
type Role string

// The roles. Anonymous viewers have RoleViewer and Anonymous set.
const (
	RoleViewer    Role = "viewer"
	RoleHost      Role = "host"
	RoleModerator Role = "moderator"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	return r == RoleViewer || r == RoleHost || r == RoleModerator
}

// Staff reports whether the role may moderate a room (host or moderator).
func (r Role) Staff() bool { return r == RoleHost || r == RoleModerator }

// AnyRoom in a token's rooms allows every room.
const AnyRoom = "*"

// Errors returned by Verify; callers branch on them to pick the error code.
var (
	ErrMissing = errors.New("auth: token missing")
	ErrInvalid = errors.New("auth: token invalid")
	ErrExpired = errors.New("auth: token expired")
)

// Claims is what a token says about its holder.
type Claims struct {
	UserID string   `json:"sub"`
	Name   string   `json:"name"`
	Role   Role     `json:"role"`
	Rooms  []string `json:"rooms"`
	// Expires is when the token stops being accepted.
	Expires time.Time `json:"-"`
}

// AllowsRoom reports whether the token lets its holder join room.
func (c *Claims) AllowsRoom(room string) bool {
	return slices.Contains(c.Rooms, AnyRoom) || slices.Contains(c.Rooms, room)
}

type jwtClaims struct {
	Name  string   `json:"name"`
	Role  Role     `json:"role"`
	Rooms []string `json:"rooms"`
	jwt.RegisteredClaims
}

// Mint signs claims with secret. Expires must be set.
func Mint(secret []byte, c Claims) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("auth: empty secret")
	}
	if c.UserID == "" || len(c.UserID) > 64 {
		return "", errors.New("auth: user id must be 1-64 characters")
	}
	if !c.Role.Valid() {
		return "", fmt.Errorf("auth: unknown role %q", c.Role)
	}
	if c.Expires.IsZero() {
		return "", errors.New("auth: expiry required")
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwtClaims{
		Name:  c.Name,
		Role:  c.Role,
		Rooms: c.Rooms,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.UserID,
			ExpiresAt: jwt.NewNumericDate(c.Expires),
			IssuedAt:  jwt.NewNumericDate(time.Now()),
		},
	})
	return t.SignedString(secret)
}

// Verify checks the token's signature and expiry at time now and returns its claims.
// Errors wrap ErrMissing, ErrInvalid or ErrExpired.
func Verify(secret []byte, token string, now time.Time) (*Claims, error) {
	if token == "" {
		return nil, ErrMissing
	}
	var jc jwtClaims
	_, err := jwt.ParseWithClaims(token, &jc, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, fmt.Errorf("%w: %v", ErrExpired, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if jc.Subject == "" || len(jc.Subject) > 64 || !jc.Role.Valid() {
		return nil, fmt.Errorf("%w: bad subject or role", ErrInvalid)
	}
	return &Claims{
		UserID:  jc.Subject,
		Name:    jc.Name,
		Role:    jc.Role,
		Rooms:   jc.Rooms,
		Expires: jc.ExpiresAt.Time,
	}, nil
}
