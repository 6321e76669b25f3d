package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/slobridge/slobridge/store"
)

// RefreshMetadata fetches again the metadata of every SP registered by
// URL, from the configuration or through Register, and replaces the
// registration when the new document is valid. An SP whose fetch or parse
// fails keeps its last good metadata; the errors are returned together.
func (idp *IdP) RefreshMetadata(ctx context.Context) error {
	var errs []error
	idp.mu.RLock()
	var urls []*SP
	for _, sp := range idp.static {
		if sp.Config.MetadataURL != "" {
			urls = append(urls, sp)
		}
	}
	pending := idp.pending
	idp.mu.RUnlock()
	errs = append(errs, idp.loadPending(ctx, pending)...)
	for _, old := range urls {
		sp, _, err := idp.fetchSP(ctx, old.Config)
		if err == nil && sp.EntityID != old.EntityID {
			err = fmt.Errorf("entityID changed from %s to %s", old.EntityID, sp.EntityID)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("saml idp: refresh metadata of %s: %w", old.EntityID, err))
			continue
		}
		idp.mu.Lock()
		idp.static[sp.EntityID] = sp
		idp.mu.Unlock()
	}
	cs, err := idp.st.ListClients(ctx, ClientKind)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("saml idp: list registered SPs: %w", err))...)
	}
	for _, c := range cs {
		if err := idp.refreshRegistered(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("saml idp: refresh metadata of %s: %w", c.ID, err))
		}
	}
	return errors.Join(errs...)
}

// fetchSP loads and parses the metadata of a registration, keeping the
// original configuration (parseSP fills in defaults on its copy).
func (idp *IdP) fetchSP(ctx context.Context, cfg SPConfig) (*SP, []byte, error) {
	raw, err := idp.loadMetadata(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	sp, err := parseSP(cfg, raw)
	return sp, raw, err
}

// refreshRegistered refreshes one SP registered at run time by URL.
func (idp *IdP) refreshRegistered(ctx context.Context, c store.Client) error {
	var s storedSP
	if err := json.Unmarshal(c.Metadata, &s); err != nil {
		return err
	}
	if s.Config.MetadataURL == "" {
		return nil
	}
	sp, raw, err := idp.fetchSP(ctx, s.Config)
	if err != nil {
		return err
	}
	if sp.EntityID != c.ID {
		return fmt.Errorf("entityID changed to %s", sp.EntityID)
	}
	if bytes.Equal(raw, s.Metadata) {
		return nil
	}
	return idp.st.UpdateClient(ctx, c.ID, func(old store.Client) (store.Client, error) {
		val, err := json.Marshal(storedSP{Config: s.Config, Metadata: raw})
		if err != nil {
			return old, err
		}
		old.Metadata, old.UpdatedAt = val, idp.now()
		return old, nil
	})
}

// Run refreshes the metadata of SPs registered by URL every
// Config.MetadataRefresh until ctx is done; failures are logged and the
// last good metadata kept.
func (idp *IdP) Run(ctx context.Context) error {
	t := time.NewTicker(idp.cfg.MetadataRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := idp.RefreshMetadata(ctx); err != nil {
				idp.log.WarnContext(ctx, "saml sp metadata refresh", "error", err)
			}
		}
	}
}

// loadPending retries the configured SPs whose metadata URL failed so far.
func (idp *IdP) loadPending(ctx context.Context, pending []SPConfig) []error {
	var errs []error
	var still []SPConfig
	for _, c := range pending {
		sp, _, err := idp.fetchSP(ctx, c)
		if err == nil {
			idp.mu.Lock()
			if _, dup := idp.static[sp.EntityID]; dup {
				err = fmt.Errorf("%s registered twice", sp.EntityID)
			} else {
				idp.static[sp.EntityID] = sp
			}
			idp.mu.Unlock()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("saml idp: load metadata from %s: %w", c.MetadataURL, err))
			still = append(still, c)
			continue
		}
		idp.log.InfoContext(ctx, "saml sp metadata loaded", "sp", sp.EntityID)
	}
	idp.mu.Lock()
	idp.pending = still
	idp.mu.Unlock()
	return errs
}
