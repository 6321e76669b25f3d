package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// result is one measured figure.
type result struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	// Target is the target for this figure, e.g. ">= 1000".
	Target string `json:"target,omitempty"`
	// Met says whether Value meets Target (absent without a target).
	Met *bool `json:"met,omitempty"`
	// Samples is how many measurements the figure summarises.
	Samples int    `json:"samples,omitempty"`
	Note    string `json:"note,omitempty"`
}

// report collects results and skipped scenarios.
type report struct {
	Target string `json:"target"`
	// Alg is the apps' token signing algorithm ("" for the default).
	Alg      string            `json:"alg,omitempty"`
	Started  time.Time         `json:"started"`
	Short    bool              `json:"short"`
	Results  []result          `json:"results"`
	Skipped  map[string]string `json:"skipped,omitempty"`
	Failures map[string]string `json:"failures,omitempty"`
}

func (r *report) add(res result) { r.Results = append(r.Results, res) }

// atLeast and atMost fill Target and Met.
func atLeast(res result, min float64) result {
	ok := res.Value >= min
	res.Target, res.Met = fmt.Sprintf(">= %g", min), &ok
	return res
}

func atMost(res result, max float64) result {
	ok := res.Value <= max
	res.Target, res.Met = fmt.Sprintf("<= %g", max), &ok
	return res
}

func (r *report) skip(scenario, why string) {
	if r.Skipped == nil {
		r.Skipped = map[string]string{}
	}
	r.Skipped[scenario] = why
}

func (r *report) fail(scenario string, err error) {
	if r.Failures == nil {
		r.Failures = map[string]string{}
	}
	r.Failures[scenario] = err.Error()
}

// writeJSON writes the report as one JSON document.
func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable writes the report as an aligned table.
func (r *report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "slobload against %s (short=%v, alg=%s)\n\n", r.Target, r.Short, cmp.Or(r.Alg, "default"))
	fmt.Fprintln(tw, "SCENARIO\tMETRIC\tVALUE\tUNIT\tTARGET\tMET\tN\tNOTE")
	for _, x := range r.Results {
		met := ""
		if x.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*x.Met]
		}
		n := ""
		if x.Samples > 0 {
			n = fmt.Sprint(x.Samples)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Scenario, x.Metric, formatValue(x.Value), x.Unit, x.Target, met, n, x.Note)
	}
	for _, m := range []struct {
		title string
		m     map[string]string
	}{{"skipped", r.Skipped}, {"FAILED", r.Failures}} {
		keys := make([]string, 0, len(m.m))
		for k := range m.m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s: %s\n", k, m.title, m.m[k])
		}
	}
	return tw.Flush()
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// percentile returns the p-th percentile (0-100) of sorted durations in
// milliseconds (nearest rank).
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1e3
}

// progress draws a one-line progress bar on stderr for long runs.
type progress struct {
	w       io.Writer
	mu      sync.Mutex
	label   string
	done    int
	total   int
	drawn   time.Time
	enabled bool
}

// start begins a new bar for total steps.
func (p *progress) start(label string, total int) {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.label, p.done, p.total, p.drawn = label, 0, max(total, 1), time.Time{}
	p.draw()
}

// step advances the bar by n.
func (p *progress) step(n int) {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if time.Since(p.drawn) >= 100*time.Millisecond || p.done >= p.total {
		p.draw()
	}
}

// set moves the bar to done.
func (p *progress) set(done int) {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	if time.Since(p.drawn) >= 100*time.Millisecond || p.done >= p.total {
		p.draw()
	}
}

// finish ends the current bar's line.
func (p *progress) finish() {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = p.total
	p.draw()
	fmt.Fprintln(p.w)
}

func (p *progress) draw() {
	const width = 30
	filled := min(width, p.done*width/p.total)
	fmt.Fprintf(p.w, "\r%-34s [%s%s] %3d%%", p.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), min(100, p.done*100/p.total))
	p.drawn = time.Now()
}
