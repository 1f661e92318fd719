// Package gateway is the WebSocket edge of liveroom: it accepts viewers, checks their
// tokens, speaks the wire protocol (docs/protocol.md) and hands room traffic to a
// fanout.Hub.
//
// Start at Gateway (gateway.go): New builds one from a Config, a NATS connection and a
// Prometheus registerer; Handler serves /ws, /healthz and /readyz; Shutdown drains.
//
// Each connection (conn.go) is a reader goroutine, which must keep reading so that
// control frames are seen and runs commands (commands.go), and a writer (writer.go)
// that drains the connection's bounded queue (queue.go) to the socket. The writer runs
// only while there is something to write and the connection ends when both have, so
// an idle viewer is one goroutine; the socket's buffers are small and a batch's is
// pooled (socket.go). Memory per idle viewer is what decides a gateway's capacity
// (docs/benchmarks.md). Rooms push shared frames into the queue without ever
// blocking; what happens when it is full depends on the frame's class: chat is dropped
// oldest first, state coalesces, replies must fit or the viewer is closed as too slow.
// A watchdog (watchdog.go) closes connections whose socket write has been stuck for
// longer than WriteTimeout.
//
// The close codes and error codes (closecodes.go, errors.go) are the tables that
// docs/protocol.md documents.
package gateway
