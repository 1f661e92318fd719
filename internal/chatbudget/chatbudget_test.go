package chatbudget

import "testing"

// A room far above the budget shows exactly the budget every second, whether its lines
// come evenly or in clumps; a burst after a quiet spell passes up to the budget.
func TestBudget(t *testing.T) {
	even := New(20)
	shown := 0
	for i := range 220 * 10 { // 220 lines/s, evenly, for 10 s
		if even.Take(int64(i) * 1e6 / 220) {
			shown++
		}
	}
	if shown != 20+20*10-1 && shown != 20+20*10 {
		t.Fatalf("even: shown %d of 2200 lines in 10 s, want ~220 (a full bucket, then 20/s)", shown)
	}

	clumped := New(20)
	shown = 0
	for c := range 33 { // 66 lines every 300 ms, for 9.9 s
		for range 66 {
			if clumped.Take(int64(c) * 300_000) {
				shown++
			}
		}
	}
	if shown != 20+6*32 {
		t.Fatalf("clumped: shown %d, want %d (a full bucket, then 6 per 300 ms)", shown, 20+6*32)
	}

	quiet := New(20)
	quiet.Take(0)
	shown = 0
	for range 30 { // a burst 10 s later
		if quiet.Take(10e6) {
			shown++
		}
	}
	if shown != 20 {
		t.Fatalf("burst after quiet: shown %d of 30, want the budget, 20", shown)
	}
	if quiet.Take(10e6 - 1) {
		t.Fatal("an older line refilled the bucket")
	}
}
