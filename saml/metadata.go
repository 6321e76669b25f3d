package saml

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
)

// ReadMetadata reads a SAML metadata document from file when it is set,
// else GETs url with client. A document longer than max bytes is refused
// rather than cut. It only fetches: the caller checks the document
// (CheckXML) and parses it.
func ReadMetadata(ctx context.Context, client *http.Client, file, url string, max int64) ([]byte, error) {
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read metadata: %w", err)
		}
		defer f.Close()
		return readCapped(f, max, "metadata file "+file)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch metadata from %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch metadata from %s: HTTP %d", url, resp.StatusCode)
	}
	return readCapped(resp.Body, max, "metadata from "+url)
}

// readCapped reads r whole, refusing more than max bytes.
func readCapped(r io.Reader, max int64, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", what, max)
	}
	return data, nil
}
