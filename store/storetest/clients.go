package storetest

import (
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/slobridge/slobridge/store"
)

// testClients covers the client registry.
func testClients(t *testing.T, f Factory) {
	runAll(t, f, []subtest{
		{"CRUD", testClientCRUD},
		{"Update", testClientUpdate},
		{"UpdateConcurrent", testClientUpdateConcurrent},
	})
}

// newClient returns a client registration.
func newClient(id, kind string) store.Client {
	return store.Client{
		ID: id, Kind: kind, Name: "Client " + id,
		Metadata:  []byte(`{"redirect_uris":["https://` + id + `.example.org/cb"]}`),
		CreatedAt: at(0), UpdatedAt: at(0),
	}
}

func testClientCRUD(t *testing.T, s store.Store) {
	wantErr(t, s.PutClient(ctx(t), store.Client{Kind: "oidc"}), store.ErrInvalid, "PutClient with empty ID")
	clients := []store.Client{newClient("c-b", "oidc"), newClient("c-a", "oidc"), newClient("sp", "saml")}
	for _, c := range clients {
		must(t, s.PutClient(ctx(t), c), "PutClient "+c.ID)
	}
	got, err := s.GetClient(ctx(t), "c-a")
	must(t, err, "GetClient")
	wantEqual(t, norm(got), norm(clients[1]), "GetClient")

	replaced := clients[1]
	replaced.Name, replaced.Static, replaced.UpdatedAt = "Renamed", true, at(time.Hour)
	must(t, s.PutClient(ctx(t), replaced), "PutClient replace")
	got, err = s.GetClient(ctx(t), "c-a")
	must(t, err, "GetClient")
	wantEqual(t, norm(got), norm(replaced), "replaced client")

	oidc, err := s.ListClients(ctx(t), "oidc")
	must(t, err, "ListClients oidc")
	wantEqual(t, norm(oidc), norm([]store.Client{replaced, clients[0]}), "oidc clients by ID")
	all, err := s.ListClients(ctx(t), "")
	must(t, err, "ListClients all")
	if len(all) != 3 {
		t.Fatalf("ListClients(\"\") returned %d, want 3", len(all))
	}

	must(t, s.DeleteClient(ctx(t), "c-a"), "DeleteClient")
	wantErr(t, s.DeleteClient(ctx(t), "c-a"), store.ErrNotFound, "DeleteClient twice")
	_, err = s.GetClient(ctx(t), "c-a")
	wantErr(t, err, store.ErrNotFound, "GetClient deleted")
}

func testClientUpdate(t *testing.T, s store.Store) {
	orig := newClient("c1", "oidc")
	must(t, s.PutClient(ctx(t), orig), "PutClient")
	err := s.UpdateClient(ctx(t), "c1", func(c store.Client) (store.Client, error) {
		c.Name = "Updated"
		c.Metadata = []byte(`{"redirect_uris":[]}`)
		c.UpdatedAt = at(time.Hour)
		return c, nil
	})
	must(t, err, "UpdateClient")
	want := orig
	want.Name, want.Metadata, want.UpdatedAt = "Updated", []byte(`{"redirect_uris":[]}`), at(time.Hour)
	got, err := s.GetClient(ctx(t), "c1")
	must(t, err, "GetClient")
	wantEqual(t, norm(got), norm(want), "updated client")

	refuse := errors.New("refused by update")
	err = s.UpdateClient(ctx(t), "c1", func(c store.Client) (store.Client, error) {
		c.Name = "Never stored"
		return c, refuse
	})
	wantErr(t, err, refuse, "UpdateClient whose function fails")
	got, err = s.GetClient(ctx(t), "c1")
	must(t, err, "GetClient")
	wantEqual(t, norm(got), norm(want), "client after a failed update")

	err = s.UpdateClient(ctx(t), "nope", func(c store.Client) (store.Client, error) { return c, nil })
	wantErr(t, err, store.ErrNotFound, "UpdateClient of an unknown client")
}

// testClientUpdateConcurrent increments a counter in the metadata from many
// goroutines: read-modify-write must not lose an update.
func testClientUpdateConcurrent(t *testing.T, s store.Store) {
	c := newClient("c1", "oidc")
	c.Metadata = []byte(`{"n":0}`)
	must(t, s.PutClient(ctx(t), c), "PutClient")
	const workers = 16
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			errs <- s.UpdateClient(ctx(t), "c1", func(c store.Client) (store.Client, error) {
				var m struct{ N int }
				if err := json.Unmarshal(c.Metadata, &m); err != nil {
					return c, err
				}
				m.N++
				raw, err := json.Marshal(map[string]int{"n": m.N})
				c.Metadata = raw
				return c, err
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err, "concurrent UpdateClient")
	}
	got, err := s.GetClient(ctx(t), "c1")
	must(t, err, "GetClient")
	if string(got.Metadata) != `{"n":16}` {
		t.Fatalf("metadata after %d increments: %s", workers, got.Metadata)
	}
}
