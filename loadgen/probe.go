package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// probeCheers joins the room once, as an observer of its own, on the first target
// that answers and returns the cheer total in the join reply's snapshot. The run reads it before
// it starts and after everything has been answered: the difference is what the
// room's total grew by during the run.
func probeCheers(ctx context.Context, cfg *Config, client *http.Client) (int64, error) {
	var errs []error
	for _, target := range cfg.Targets {
		total, err := probeOne(ctx, cfg, client, target)
		if err == nil {
			return total, nil
		}
		errs = append(errs, err)
	}
	return 0, errors.Join(errs...)
}

func probeOne(ctx context.Context, cfg *Config, client *http.Client, target string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tok, err := (&engine{cfg: *cfg, stats: newShardStats()}).mintOrErr("lg-probe")
	if err != nil {
		return 0, err
	}
	c, _, err := websocket.Dial(ctx, target, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		return 0, fmt.Errorf("probe: %w", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(4 << 20)
	if err := c.Write(ctx, websocket.MessageText, encodeCommand(command{ID: "j", Cmd: "join", Room: cfg.Room, Token: tok})); err != nil {
		return 0, fmt.Errorf("probe: %w", err)
	}
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return 0, fmt.Errorf("probe: %w", err)
		}
		var f frame
		if json.Unmarshal(b, &f) != nil || f.Type != "reply" || f.ID != "j" {
			continue
		}
		if f.Error != nil {
			return 0, fmt.Errorf("probe: join: %s", f.Error.Code)
		}
		if f.Result == nil || f.Result.Snapshot == nil {
			return 0, errors.New("probe: join reply without a snapshot")
		}
		c.Close(websocket.StatusNormalClosure, "probe done")
		return f.Result.Snapshot.Cheers, nil
	}
}
