package gateway

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveroom/liveroom/fanout"
)

// queueSink is a viewer's real outbound queue without the socket: what a broadcast
// costs before the writers run.
type queueSink struct {
	q    *queue
	done chan struct{} // non-nil on the last sink: signals each delivery
}

func (s *queueSink) Deliver(f *fanout.Frame) {
	s.q.push(f)
	s.q.giveBack(s.q.take()) // the writer would drain it; keep the queue small
	if s.done != nil {
		s.done <- struct{}{}
	}
}

// BenchmarkBroadcast publishes one chat event through NATS into a room of N local
// viewer queues per op. allocs/op stays flat as N grows: the frame is built once.
func BenchmarkBroadcast(b *testing.B) {
	ns := startNATS(b)
	for _, viewers := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("viewers=%d", viewers), func(b *testing.B) {
			nc, err := nats.Connect(ns.ClientURL())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			hub, err := fanout.New(b.Context(), fanout.Config{Tick: time.Millisecond, LargeRoomTick: time.Millisecond}, nc, prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			defer hub.Close()
			room := "bench" + strconv.Itoa(viewers)
			for range viewers - 1 {
				if err := hub.Join(room, &queueSink{q: newQueue(1 << 20)}); err != nil {
					b.Fatal(err)
				}
			}
			last := &queueSink{q: newQueue(1 << 20), done: make(chan struct{}, 1)}
			if err := hub.Join(room, last); err != nil {
				b.Fatal(err)
			}
			msg := nats.NewMsg("lr.ev." + room + ".chat")
			msg.Data = []byte(`{"user":{"id":"u1","name":"小红","role":"host"},"text":"好看! 3 2 1 上链接","cid":"c1"}`)
			msg.Header.Set("Nats-Time-Stamp", time.Now().UTC().Format(time.RFC3339Nano))
			// A host line: never sampled out by the room's chat budget. Each op's line has
			// the next stream sequence (a line not above the room's last is a duplicate).
			msg.Header.Set("Lr-Role", "host")
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				msg.Header.Set("Nats-Sequence", strconv.Itoa(i+1))
				if err := nc.PublishMsg(msg); err != nil {
					b.Fatal(err)
				}
				<-last.done
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(viewers), "ns/viewer")
		})
	}
}
