package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/liveroom/liveroom/web"
)

func TestHandlerRoutes(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		path, status, contains string
	}{
		{"/", "200", `href="/r/demo"`},
		{"/r/demo", "200", `src="/static/viewer.js"`},
		{"/r/Room_1-b", "200", `src="/static/viewer.js"`},
		{"/host/demo", "200", `src="/static/host.js"`},
		{"/r/bad.name", "404", "room names"},
		{"/r/" + strings.Repeat("x", 65), "404", "room names"},
		{"/r/demo/extra", "404", ""},
		{"/static/liveroom.js", "200", "class Client"},
		{"/static/style.css", "200", ".product"},
		{"/nope", "404", ""},
	} {
		res, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if got := res.Status[:3]; got != tc.status {
			t.Errorf("GET %s: status %s, want %s", tc.path, got, tc.status)
		}
		if !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s: body does not contain %q", tc.path, tc.contains)
		}
		if tc.status == "200" && res.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", tc.path, res.Header.Get("Cache-Control"))
		}
	}
}
