// Package web serves liveroom's pages, embedded into the binary so that `liveroom
// serve` needs nothing else:
//
//   - /r/{room}: the viewer page (video over WHEP, chat, cheers, online count, pinned
//     product with a buy button), static/viewer.html + viewer.js;
//   - /host/{room}: the host page (camera to WHIP, go live / end, pins, moderation),
//     static/host.html + host.js;
//   - /: a landing page linking both;
//   - /static/: the assets, among them liveroom.js, the small client for the WebSocket
//     protocol (docs/protocol.md) that both pages use, documented in docs/client.md.
//
// Plain JS and CSS, no build step. The browser test (browser_test.go) drives both pages
// in headless Chromium against a real gateway and media server.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the pages and their assets.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.Handle("GET /r/{room}", roomPage(sub, "viewer.html"))
	mux.Handle("GET /host/{room}", roomPage(sub, "host.html"))
	mux.Handle("GET /{$}", page(sub, "index.html"))
	mux.Handle("GET /static/", http.StripPrefix("/static/", noCache(http.FileServerFS(sub))))
	return mux
}

// roomPage serves one page for every valid room name; the page reads the room from
// its path.
func roomPage(fsys fs.FS, name string) http.Handler {
	p := page(fsys, name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !validRoom(r.PathValue("room")) {
			http.Error(w, "room names are 1-64 characters of A-Z a-z 0-9 _ -", http.StatusNotFound)
			return
		}
		p.ServeHTTP(w, r)
	})
}

func page(fsys fs.FS, name string) http.Handler {
	return noCache(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, fsys, name)
	}))
}

// noCache makes browsers revalidate: the pages change with the binary, and the
// revalidation is a cheap 304 (embedded files carry no modification time, so the
// file server answers with the content; the assets are small).
func noCache(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// validRoom is the protocol's room name rule (docs/protocol.md): 1-64 characters of
// [A-Za-z0-9_-]. Kept here rather than imported so that web stays a leaf package.
func validRoom(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
