package loadgen

import (
	"testing"
	"time"

	"github.com/liveroom/liveroom/gateway"
)

// With --flash-mash every viewer presses all its presses, final answer or not: the
// presses are exactly viewers × FlashPresses, the winners' later presses are answered
// already_bought, and the sale still sells exactly its stock.
func TestFlashMashPressesEveryTime(t *testing.T) {
	gws := startGatewaysCfg(t, 1, gateway.Config{})
	const viewers = 60
	cfg := flatConfig(t, []string{gws[0].url}, viewers)
	cfg.Hold = 5 * time.Second // the sale starts mid-hold; its presses span 2 s
	cfg.FlatCheerRate = -1
	cfg.FlashStock = 20
	cfg.FlashPresses = 3
	cfg.FlashMash = true
	r, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fl := r.Flash
	if fl.Presses != viewers*3 {
		t.Errorf("presses = %d, want every viewer's 3: %d", fl.Presses, viewers*3)
	}
	if fl.Won != 20 || fl.Oversold || fl.MultiWins != 0 || fl.Answers["already_bought"] < 20 {
		t.Errorf("flash: %+v (the 20 winners press twice more: already_bought)", fl)
	}
}
