// Package web serves liveroom's pages, embedded into the binary so that `liveroom
// serve` needs nothing else: today a minimal chat page at "/" (join a room, read and
// send chat). The pages speak the protocol in docs/protocol.md.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the pages.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}
