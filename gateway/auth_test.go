package gateway

import (
	"testing"
	"time"

	"github.com/liveroom/liveroom/auth"
)

func TestTokenChecks(t *testing.T) {
	ns := startNATS(t)
	g := startGateway(t, ns, Config{AllowAnonymous: false})
	wrongKey, err := auth.Mint([]byte("another secret"), auth.Claims{UserID: "u", Role: auth.RoleViewer, Rooms: []string{"*"}, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, room, token, want string
	}{
		{"no token, anonymous off", "r", "", codeUnauthorized},
		{"garbage token", "r", "abc.def.ghi", codeUnauthorized},
		{"wrong signature", "r", wrongKey, codeUnauthorized},
		{"expired", "r", mintToken(t, "u", auth.RoleViewer, []string{"r"}, -time.Minute), codeTokenExpired},
		{"wrong room", "r2", mintToken(t, "u", auth.RoleViewer, []string{"r1"}, time.Hour), codeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, g.url)
			c.t = t
			f := c.call(map[string]any{"cmd": "join", "room": tc.room, "token": tc.token})
			if f.Error == nil || f.Error.Code != tc.want {
				t.Fatalf("join reply = %+v, want %s", f, tc.want)
			}
		})
	}

	t.Run("one user per connection", func(t *testing.T) {
		c := dial(t, g.url)
		c.t = t
		c.join("a", mintToken(t, "u1", auth.RoleViewer, []string{"*"}, time.Hour))
		f := c.call(map[string]any{"cmd": "join", "room": "b", "token": mintToken(t, "u2", auth.RoleViewer, []string{"*"}, time.Hour)})
		if f.Error == nil || f.Error.Code != codeForbidden {
			t.Fatalf("second user's join = %+v, want forbidden", f)
		}
		// The first user's token still covers more rooms without sending it again.
		c.join("b", "")
	})

	t.Run("token expiring while joined closes with 4003", func(t *testing.T) {
		c := dial(t, g.url)
		c.t = t
		// JWT expiry has one-second resolution; 2s leaves room for the join.
		c.join("r", mintToken(t, "u", auth.RoleViewer, []string{"r"}, 2*time.Second))
		if got := c.closeCode(); got != CloseAuthExpired {
			t.Fatalf("close code = %v, want %v", got, CloseAuthExpired)
		}
	})
}
