package loadgen

import (
	"container/heap"
	"time"
)

// dueHeap orders viewers by a time: when their session ends, their next heartbeat is
// due, or their leave is sent. The engine's controller owns each one; nothing else
// touches it, so it has no lock.
type dueHeap struct{ items []dueItem }

type dueItem struct {
	at   time.Time
	v    *viewer
	item string // presses: the flash-sale item
}

func (h *dueHeap) Len() int           { return len(h.items) }
func (h *dueHeap) Less(i, j int) bool { return h.items[i].at.Before(h.items[j].at) }
func (h *dueHeap) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *dueHeap) Push(x any)         { h.items = append(h.items, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	n := len(h.items) - 1
	it := h.items[n]
	h.items[n] = dueItem{}
	h.items = h.items[:n]
	return it
}

func (h *dueHeap) push(at time.Time, v *viewer) { heap.Push(h, dueItem{at: at, v: v}) }

func (h *dueHeap) pushItem(at time.Time, v *viewer, item string) {
	heap.Push(h, dueItem{at: at, v: v, item: item})
}

// popDue returns the earliest viewer if it is due at now.
func (h *dueHeap) popDue(now time.Time) (dueItem, bool) {
	if len(h.items) == 0 || h.items[0].at.After(now) {
		return dueItem{}, false
	}
	return heap.Pop(h).(dueItem), true
}

// popFirst returns the earliest viewer whatever its time.
func (h *dueHeap) popFirst() (dueItem, bool) {
	if len(h.items) == 0 {
		return dueItem{}, false
	}
	return heap.Pop(h).(dueItem), true
}
