package loadgen

import (
	"fmt"
	"html/template"
	"os"
	"strings"
)

// WriteHTML writes a self-contained page (no scripts, no external resources) with the
// report's figures and charts over time drawn as inline SVG.
func (r *Report) WriteHTML(path string) error {
	var b strings.Builder
	if err := reportPage.Execute(&b, r.pageData()); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

type chart struct {
	Title string
	SVG   template.HTML
}

type pageData struct {
	R       *Report
	Classes []classRow
	Charts  []chart
}

type classRow struct {
	Name string
	ClassReport
}

func (r *Report) pageData() pageData {
	d := pageData{R: r}
	for _, name := range []string{"chat", "pin", "cheer_total", "online"} {
		d.Classes = append(d.Classes, classRow{name, r.Classes[name]})
	}
	pick := func(f func(Sample) float64) []float64 {
		out := make([]float64, len(r.Timeline))
		for i, s := range r.Timeline {
			out[i] = f(s)
		}
		return out
	}
	d.Charts = []chart{
		{"Viewers connected", lineChart([]series{{"viewers", "#1f77b4", pick(func(s Sample) float64 { return float64(s.Viewers) })}})},
		{"Chat latency (ms, per second)", lineChart([]series{
			{"p50", "#2ca02c", pick(func(s Sample) float64 { return s.P50MS })},
			{"p99", "#d62728", pick(func(s Sample) float64 { return s.P99MS })},
		})},
		{"Events delivered per second", lineChart([]series{{"events/s", "#9467bd", pick(func(s Sample) float64 { return float64(s.EventsPerS) })}})},
		{"Gateways (all targets)", lineChart([]series{
			{"RSS MiB", "#8c564b", pick(func(s Sample) float64 { return s.GatewayRSS })},
			{"CPU cores ×100", "#ff7f0e", pick(func(s Sample) float64 { return s.GatewayCPU * 100 })},
		})},
	}
	return d
}

type series struct {
	Name  string
	Color string
	Y     []float64
}

// lineChart draws series against seconds as an SVG polyline chart.
func lineChart(ss []series) template.HTML {
	const w, h, pad = 720.0, 220.0, 40.0
	n, top := 0, 0.0
	for _, s := range ss {
		n = max(n, len(s.Y))
		for _, y := range s.Y {
			top = max(top, y)
		}
	}
	if top == 0 {
		top = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`, w, h, w, h)
	fmt.Fprintf(&b, `<rect x="%.0f" y="10" width="%.0f" height="%.0f" fill="none" stroke="#ccc"/>`, pad, w-pad-10, h-pad-10)
	fmt.Fprintf(&b, `<text x="2" y="20" font-size="11">%.4g</text><text x="2" y="%.0f" font-size="11">0</text>`, top, h-pad)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11">0 s</text><text x="%.0f" y="%.0f" font-size="11" text-anchor="end">%d s</text>`, pad, h-pad+14, w-10, h-pad+14, n)
	for k, s := range ss {
		var pts strings.Builder
		for i, y := range s.Y {
			x := pad + (w-pad-10)*float64(i)/float64(max(1, n-1))
			yy := 10 + (h-pad-10)*(1-y/top)
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, yy)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, s.Color, pts.String())
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="11" fill="%s">%s</text>`, pad+10+float64(k)*120, h-6, s.Color, template.HTMLEscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var reportPage = template.Must(template.New("report").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>liveroom loadgen report</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:780px}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f5f5f5}td:first-child{text-align:left}</style>
</head><body>
<h1>liveroom loadgen</h1>
<p>profile <b>{{.R.Profile}}</b>, room <b>{{.R.Room}}</b>, speed {{.R.Speed}}, {{.R.Shards}} process(es), {{printf "%.1f" .R.DurationS}} s</p>
<table>
<tr><th>viewers target</th><th>peak</th><th>connect failures</th><th>reconnects</th><th>join p50 ms</th><th>join p99 ms</th><th>join max ms</th></tr>
<tr><td>{{.R.ViewersTarget}}</td><td>{{.R.ViewersPeak}}</td><td>{{.R.ConnectFailures}}</td><td>{{.R.Reconnects}}</td><td>{{printf "%.1f" .R.JoinMS.P50}}</td><td>{{printf "%.1f" .R.JoinMS.P99}}</td><td>{{printf "%.1f" .R.JoinMS.Max}}</td></tr>
</table>
<h2>Events</h2>
<table><tr><th>class</th><th>measured</th><th>expected</th><th>delivered</th><th>lost</th><th>duplicated</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>
{{range .Classes}}<tr><td>{{.Name}}</td><td>{{.Measured}}</td><td>{{.Expected}}</td><td>{{.Delivered}}</td><td>{{.Lost}}</td><td>{{.Duplicated}}</td><td>{{printf "%.1f" .P50MS}}</td><td>{{printf "%.1f" .P90MS}}</td><td>{{printf "%.1f" .P99MS}}</td><td>{{printf "%.1f" .MaxMS}}</td></tr>
{{end}}</table>
<p>chat lines sent {{.R.Chat.Sent}}, acked {{.R.Chat.Acked}}, stored {{.R.Chat.Stored}}, sampled (viewer × line) {{(index .R.Classes "chat").Sampled}}; pins {{.R.Pins}}</p>
<p>cheers: taps sent {{.R.Cheers.Sent}}, credited {{.R.Cheers.Acked}}, refused {{.R.Cheers.Refused}}, unknown {{.R.Cheers.Unknown}}, room total {{.R.Cheers.InitialTotal}} → {{.R.Cheers.FinalTotal}}, exact <b>{{.R.Cheers.Exact}}</b> (measured {{.R.Cheers.Measured}})</p>
{{if .R.Flash.Sales}}<p>flash sales {{.R.Flash.Sales}} × {{.R.Flash.Stock}} units: presses {{.R.Flash.Presses}}, won {{.R.Flash.Won}}, oversold <b>{{.R.Flash.Oversold}}</b>, users with two wins {{.R.Flash.MultiWins}}, answers {{.R.Flash.Answers}}, answer p50/p99/max {{printf "%.1f" .R.Flash.AnswerMS.P50}}/{{printf "%.1f" .R.Flash.AnswerMS.P99}}/{{printf "%.1f" .R.Flash.AnswerMS.Max}} ms</p>{{end}}
<p>actions resent {{.R.Retried}}, unanswered {{.R.Unanswered}}, rejected {{.R.Rejected}}</p>
<h2>Gateways</h2>
<table><tr><th>url</th><th>cpu s</th><th>peak RSS MiB</th><th>end RSS MiB</th><th>error</th></tr>
{{range .R.Gateways}}<tr><td>{{.URL}}</td><td>{{printf "%.1f" .CPUS}}</td><td>{{printf "%.1f" .RSSMB}}</td><td>{{printf "%.1f" .RSSEndMB}}</td><td>{{.Error}}</td></tr>
{{end}}</table>
{{with .R.WHEP}}<h2>WebRTC viewers (WHEP)</h2>
<table><tr><th>viewers</th><th>connected</th><th>started</th><th>failed</th><th>packets</th><th>lost</th><th>loss %</th><th>first keyframe p50 / p99 / max ms</th><th>delay drift p50 / max ms</th><th>growing delay</th></tr>
<tr><td>{{.Viewers}}</td><td>{{.Connected}}</td><td>{{.Started}}</td><td>{{.Failed}} {{.Failures}}</td><td>{{.Packets}}</td><td>{{.Lost}}</td><td>{{printf "%.3f" .LossPct}}</td><td>{{printf "%.0f" .FirstKeyframeMS.P50}} / {{printf "%.0f" .FirstKeyframeMS.P99}} / {{printf "%.0f" .FirstKeyframeMS.Max}}</td><td>{{printf "%.1f" .DelayDriftMS.P50}} / {{printf "%.1f" .DelayDriftMS.Max}}</td><td>{{.GrowingDelay}}</td></tr>
</table>
<p>media server {{.Server.MetricsURL}}: {{printf "%.2f" .Server.CPUUSPerPacket}} µs CPU per packet received ({{printf "%.1f" .Server.CPUS}} s over {{.Server.PacketsReceived}} packets in a {{printf "%.1f" .Server.WindowS}} s steady window), RSS {{printf "%.0f" .Server.RSSBeforeMB}} → {{printf "%.0f" .Server.RSSMB}} MiB, {{printf "%.0f" .Server.KiBPerViewer}} KiB per viewer {{.Server.Error}}</p>
{{with .Publisher}}<p>WHIP publisher: {{.Frames}} frames, {{.Keyframes}} keyframes ({{.KeyframesOnRequest}} on request, {{.PLIs}} PLIs), {{printf "%.0f" .PacketsPerS}} packets/s, {{printf "%.0f" .KbitPerS}} kbit/s {{.Error}}</p>{{end}}
{{if .Error}}<p>error: {{.Error}}</p>{{end}}{{end}}
<h2>Over time</h2>
{{range .Charts}}<h3>{{.Title}}</h3>{{.SVG}}
{{end}}
{{range .R.Notes}}<p><i>{{.}}</i></p>{{end}}
</body></html>
`))
