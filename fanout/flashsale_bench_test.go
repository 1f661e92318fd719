package fanout

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveroom/liveroom/internal/embednats"
)

var benchSales atomic.Int64

// benchPresses presses b.N times from many goroutines: press i is user i%users with a
// new cid. It reports presses/s and the wins.
func benchPresses(b *testing.B, stock func(n int) int, users int) {
	ns := embednats.Test(b)
	f, _ := startFlash(b, ns, FlashConfig{PressRate: 1e9, PressBurst: 1 << 30})
	item := fmt.Sprint("i", benchSales.Add(1))
	openSale(b, f, Sale{Room: "r", Item: item, Stock: stock(b.N), StartsAt: time.Now().Add(-time.Second), PerUserLimit: 1})
	var next, wins atomic.Int64
	b.SetParallelism(64) // many presses in flight at once, like the herd
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			a, err := f.Buy(context.Background(), Press{Room: "r", Item: item, User: fmt.Sprint("u", i%int64(users)), CID: fmt.Sprint("c", i)})
			if err != nil {
				b.Error(err)
				return
			}
			if a.Kind == Won {
				wins.Add(1)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "presses/s")
	b.ReportMetric(float64(wins.Load()), "wins")
}

// The herd: 1,000 units, 10,000 users pressing again and again. Most presses are
// answered from memory once the pool is exhausted.
func BenchmarkFlashHerd(b *testing.B) {
	benchPresses(b, func(int) int { return 1000 }, 10000)
}

// Every press a win: the JetStream-bound path (lease, order publish, settle).
func BenchmarkFlashWins(b *testing.B) {
	benchPresses(b, func(n int) int { return n }, 1<<30)
}
