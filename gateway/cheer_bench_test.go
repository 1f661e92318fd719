package gateway

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveroom/liveroom/auth"
)

// BenchmarkCheerThroughput measures cheer taps credited per second with exact totals:
// 1000 viewers on two gateways (default CheerInterval, 200 ms) each send cheer commands
// of 20 taps, one at a time (a command is answered once its batch is stored), until b.N
// commands are acknowledged; then the stored total must equal the taps credited.
//
//	go test -run '^$' -bench CheerThroughput -benchtime 20000x ./gateway/
func BenchmarkCheerThroughput(b *testing.B) {
	ns := startNATS(b)
	cfg := Config{CheerRate: 1e6, CheerBurst: 1e6}
	gws := []*testGateway{startGateway(b, ns, cfg), startGateway(b, ns, cfg)}
	const room, viewers, taps = "bench", 1000, 20
	clients := make([]*stateClient, viewers)
	for i := range clients {
		clients[i] = mustDialState(b, gws[i%2].url)
		clients[i].join(room, mintToken(b, fmt.Sprint("u", i), auth.RoleViewer, []string{room}, time.Hour))
	}
	var (
		left     atomic.Int64
		credited atomic.Int64
		wg       sync.WaitGroup
		failed   atomic.Value
	)
	left.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; left.Add(-1) >= 0; j++ {
				res, cerr, err := cheer(c, room, fmt.Sprintf("%d-%d", i, j), taps)
				if err != nil || cerr != nil {
					failed.Store(fmt.Sprint(err, cerr))
					return
				}
				credited.Add(res.Credited)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	if got := storedCheers(b, ns, room); got != credited.Load() {
		b.Fatalf("stored %d, credited %d", got, credited.Load())
	}
	b.ReportMetric(float64(credited.Load())/elapsed.Seconds(), "taps/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmds/s")
}
