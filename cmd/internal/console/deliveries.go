package console

import (
	"cmp"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// failingPage is how many failing deliveries the Deliveries page groups at
// a time (newest first).
const failingPage = store.MaxPage

// receiverHost is the receiver a delivery goes to (slobridge.ReceiverOf,
// as the delivery workers' per-host limit counts them), the Deliveries
// page's grouping.
func receiverHost(d store.Delivery) string {
	if d.Participant.BackChannelURL == "" {
		return "(no back-channel URL)"
	}
	return slobridge.ReceiverOf(d.Participant.BackChannelURL)
}

// hostFailures sums the failing deliveries to one receiver host.
type hostFailures struct {
	Host             string
	Retrying, Failed int
	LastError        string
	LastAt           time.Time
	// Deliveries are the newest few, to open.
	Deliveries []store.Delivery
}

// deliveriesView is the Deliveries page.
type deliveriesView struct {
	Hosts []hostFailures
	// Listed is how many failing deliveries the groups hold; Retrying and
	// Failed count every delivery in those states.
	Listed, Retrying, Failed int
	// Next links to the page of older failures, empty on the last.
	Next template.URL
}

// lastAttemptAt is when d was last tried (its creation before any try).
func lastAttemptAt(d store.Delivery) time.Time {
	if n := len(d.Attempts); n > 0 {
		return d.Attempts[n-1].At
	}
	return d.CreatedAt
}

// groupByHost groups failing deliveries by receiver host, the hosts with
// the most failures first.
func groupByHost(ds []store.Delivery) []hostFailures {
	idx := map[string]int{}
	var out []hostFailures
	for _, d := range ds {
		h := receiverHost(d)
		i, ok := idx[h]
		if !ok {
			i = len(out)
			idx[h] = i
			out = append(out, hostFailures{Host: h})
		}
		g := &out[i]
		if d.State == store.DeliveryFailed {
			g.Failed++
		} else {
			g.Retrying++
		}
		if at := lastAttemptAt(d); at.After(g.LastAt) || g.LastAt.IsZero() {
			g.LastAt, g.LastError = at, d.LastError
		}
		if len(g.Deliveries) < 5 {
			g.Deliveries = append(g.Deliveries, d)
		}
	}
	slices.SortStableFunc(out, func(a, b hostFailures) int {
		return cmp.Compare(b.Retrying+b.Failed, a.Retrying+a.Failed)
	})
	return out
}

// handleDeliveries shows what is failing now, grouped by receiver host:
// the page an on-call operator opens first.
func (c *Console) handleDeliveries(g *gin.Context) {
	ctx := g.Request.Context()
	cur, ok := c.cursor(g, "Deliveries")
	if !ok {
		return
	}
	st := c.opts.Engine.Store()
	ds, err := st.ListFailingDeliveries(ctx, cur, failingPage)
	if err != nil {
		c.fail(g, "list failing deliveries", err)
		return
	}
	counts, err := st.CountDeliveries(ctx)
	if err != nil {
		c.fail(g, "count deliveries", err)
		return
	}
	v := deliveriesView{Hosts: groupByHost(ds), Listed: len(ds),
		Retrying: counts[store.DeliveryRetrying], Failed: counts[store.DeliveryFailed]}
	if len(ds) == failingPage {
		last := ds[len(ds)-1]
		v.Next = c.nextPage("/deliveries", nil, last.CreatedAt, last.ID)
	}
	c.page(g, http.StatusOK, "deliveries", v)
}

// attemptRow is one attempt on a delivery's page, with when the next one
// followed (or is due; zero when there is none).
type attemptRow struct {
	store.Attempt
	Next time.Time
}

// deliveryView is one delivery's page.
type deliveryView struct {
	store.Delivery
	Host string
	// Attempts, with when each next one followed, stand in for the
	// delivery's own.
	Attempts []attemptRow
	// Retryable is true when Retry now would send it (store.RetryNow).
	Retryable bool
	// Sig is the signature of its logout's status (statusSig) while it is
	// not final.
	Sig string
}

// refresh reloads the page until the delivery is final.
func (v deliveryView) refresh() bool { return !v.State.Final() }

func (v deliveryView) live() (string, string) { return v.LogoutID, v.Sig }

// handleDelivery shows one delivery with the history of its attempts.
func (c *Console) handleDelivery(g *gin.Context) {
	d, err := c.opts.Engine.Store().GetDelivery(g.Request.Context(), g.Param("delivery_id"))
	if errors.Is(err, store.ErrNotFound) {
		c.page(g, http.StatusNotFound, "message", msgView{Title: "Delivery", Message: "There is no such delivery."})
		return
	} else if err != nil {
		c.fail(g, "read the delivery", err)
		return
	}
	_, retryable := store.RetryNow(d, c.opts.Engine.Now())
	v := deliveryView{Delivery: d, Host: receiverHost(d), Retryable: retryable}
	for i, a := range d.Attempts {
		row := attemptRow{Attempt: a}
		if i+1 < len(d.Attempts) {
			row.Next = d.Attempts[i+1].At
		} else if !d.State.Final() {
			row.Next = d.NextAttemptAt
		}
		v.Attempts = append(v.Attempts, row)
	}
	if !d.State.Final() {
		st, err := c.opts.Engine.Status(g.Request.Context(), d.LogoutID)
		if err != nil {
			c.fail(g, "read the delivery's logout", err)
			return
		}
		v.Sig = statusSig(st)
	}
	c.page(g, http.StatusOK, "delivery", v)
}

// handleRetryDelivery sends one delivery again now.
func (c *Console) handleRetryDelivery(g *gin.Context) {
	op := g.MustGet(ctxOperator).(store.Session)
	id := g.Param("delivery_id")
	d, changed, err := c.opts.Engine.RetryDelivery(g.Request.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.audit(g, op, "retry", "delivery "+id, "", "refused: no such delivery")
		c.page(g, http.StatusNotFound, "message", msgView{Title: "Retry", Message: "There is no such delivery."})
		return
	case err != nil:
		c.audit(g, op, "retry", "delivery "+id, "", "error: "+err.Error())
		c.fail(g, "retry the delivery", err)
		return
	}
	result := "sent again"
	if !changed {
		result = "nothing to do: " + string(d.State)
	}
	c.audit(g, op, "retry", "delivery "+id+" of logout "+d.LogoutID, "", result)
	g.Redirect(http.StatusSeeOther, c.path("/deliveries/"+url.PathEscape(id)))
}
