package loadgen_test

import (
	"context"
	"fmt"
	"time"

	"github.com/liveroom/liveroom/loadgen"
)

// Replay the seed room ten times faster against two local gateways and write the
// report. (Not run as a test: it needs gateways listening on 8080 and 8081.)
func ExampleRun() {
	r, err := loadgen.Run(context.Background(), loadgen.Config{
		Targets: []string{"ws://127.0.0.1:8080/ws", "ws://127.0.0.1:8081/ws"},
		Secret:  []byte("the gateways' secret"),
		Viewers: 22000, // above PerProcess (9000): three child processes
		Speed:   10,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	chat := r.Classes["chat"]
	fmt.Printf("%d/%d viewers, chat lost %d, p99 %.0f ms\n", r.ViewersPeak, r.ViewersTarget, chat.Lost, chat.P99MS)
	_ = r.WriteJSON("seed.json")
}

// A flat fan-out test: every viewer joins, then the room chats at 10 lines/s for a
// minute; FullS is how long the join storm took.
func ExampleRun_flat() {
	r, _ := loadgen.Run(context.Background(), loadgen.Config{
		Targets:      []string{"ws://127.0.0.1:8081/ws"},
		Secret:       []byte("the gateways' secret"),
		Profile:      loadgen.ProfileFlat,
		Viewers:      18000,
		FlatChatRate: 10,
		Hold:         time.Minute,
	})
	if r != nil {
		fmt.Printf("joined in %.1f s, join p99 %.0f ms\n", r.FullS, r.JoinMS.P99)
	}
}
