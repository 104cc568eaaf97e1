package objstore

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Test hooks (set only by export_test.go).
var (
	// testPartMD5 may change the Content-MD5 sent with a part (or with a
	// single PUT, as part 0) before it is sent.
	testPartMD5 func(part int32, sum []byte)
	// testAfterPart runs after each part is in (uploaded or reused).
	testAfterPart func(part int32)
)

// leftover is a multipart upload that was open when the Store was opened.
type leftover struct {
	id        string
	initiated time.Time
}

// maxListPages bounds the ListMultipartUploads pages read at Open (1,000
// uploads each). Uploads past them are left for a later run to find.
const maxListPages = 1000

// listLeftovers reads the multipart uploads open under the prefix: those a
// crashed run left, which the next Put (or Stat) of their name resumes or
// aborts. Uploads other processes start later are not touched.
func (s *Store) listLeftovers(ctx context.Context) error {
	s.leftovers = map[string][]leftover{}
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix)}
	for range maxListPages {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return err
		}
		for _, u := range out.Uploads {
			k := aws.ToString(u.Key)
			s.leftovers[k] = append(s.leftovers[k], leftover{id: aws.ToString(u.UploadId), initiated: aws.ToTime(u.Initiated)})
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextKeyMarker) == "" {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
	return nil
}

// takeLeftovers returns the uploads of key that were open when the Store
// was opened, and those this process left open in earlier Puts of key that
// failed, newest first. From now on they count as this process's own: a
// retried Put finds them again, and AbortOpenUploads aborts them.
func (s *Store) takeLeftovers(key string) []leftover {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.leftovers[key] {
		s.open[l.id] = openUpload{key: key, initiated: l.initiated}
	}
	delete(s.leftovers, key)
	var l []leftover
	for id, u := range s.open {
		if u.key == key {
			l = append(l, leftover{id: id, initiated: u.initiated})
		}
	}
	sort.Slice(l, func(i, j int) bool { return l[i].initiated.After(l[j].initiated) })
	return l
}

// openUpload is a multipart upload this process has open.
type openUpload struct {
	key       string
	initiated time.Time
}

func (s *Store) track(id, key string) {
	s.mu.Lock()
	s.open[id] = openUpload{key: key, initiated: time.Now()}
	s.mu.Unlock()
}

func (s *Store) untrack(id string) {
	s.mu.Lock()
	delete(s.open, id)
	s.mu.Unlock()
}

// abort aborts a multipart upload; one already gone is no error.
func (s *Store) abort(ctx context.Context, key, id string) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: aws.String(id),
	})
	if err != nil && status(err) != 404 {
		return s.wrap("abort upload of", "s3://"+s.bucket+"/"+key, err)
	}
	s.untrack(id)
	return nil
}

// AbortOpenUploads aborts the multipart uploads this process started and
// has not completed (those of Puts that failed or were cancelled), for a
// clean shutdown: a run that stops leaves no upload behind. After kill -9,
// the next run's Put of the same name finds them instead.
func (s *Store) AbortOpenUploads(ctx context.Context) error {
	s.mu.Lock()
	open := make(map[string]string, len(s.open))
	for id, u := range s.open {
		open[id] = u.key
	}
	s.mu.Unlock()
	var first error
	for id, k := range open {
		if err := s.abort(ctx, k, id); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Put stores the first size bytes of f as the object of name, recording
// owner (the URL, see Owner) as its metadata. The object becomes visible
// only whole, and only once the server has checked what it received: below
// the multipart threshold as one PUT with Content-MD5; from it on as a
// multipart upload with Content-MD5 on every part, read from f as it is
// sent, and completed only when every part is in. An upload of name left
// open by an earlier run (or an earlier failed Put) is resumed: a part whose
// size and ETag (the MD5 of its bytes) match f is not sent again; other
// open uploads of name are aborted. Put returns nil only when the object is
// stored. f is read with ReadAt, so its offset does not move.
//
// A cancelled ctx leaves a multipart upload open, for the next Put of name
// to resume or for AbortOpenUploads to abort; a Final error aborts it. A
// resumed upload keeps the owner of the run that started it: the bytes of
// each part are checked against f, the owner cannot be (S3 does not show an
// open upload's metadata).
func (s *Store) Put(ctx context.Context, name string, f *os.File, size int64, owner string) error {
	key := s.Key(name)
	u := s.URL(name)
	meta := map[string]string{ownerMeta: encodeOwner(Owner(owner))}
	old := s.takeLeftovers(key)
	if size < s.threshold {
		for _, l := range old {
			if err := s.abort(ctx, key, l.id); err != nil {
				return err
			}
		}
		return s.putSingle(ctx, key, u, f, size, meta)
	}
	return s.putMultipart(ctx, key, u, f, size, meta, old)
}

// sumMD5 returns the MD5 of n bytes of f from off.
func sumMD5(f *os.File, off, n int64) ([]byte, error) {
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func (s *Store) putSingle(ctx context.Context, key, u string, f *os.File, size int64, meta map[string]string) error {
	sum, err := sumMD5(f, 0, size)
	if err != nil {
		return fmt.Errorf("put %s: read %s: %w", u, f.Name(), err)
	}
	if testPartMD5 != nil {
		testPartMD5(0, sum)
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          io.NewSectionReader(f, 0, size),
		ContentLength: aws.Int64(size),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum)),
		Metadata:      meta,
	})
	return s.wrap("put", u, err)
}

// partSizeFor returns the part size for a file of size bytes: the Store's,
// or larger (a whole MiB) when that would take more than 10,000 parts.
func (s *Store) partSizeFor(size int64) int64 {
	p := s.partSize
	if min := (size + maxParts - 1) / maxParts; p < min {
		p = (min + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return p
}

func (s *Store) putMultipart(ctx context.Context, key, u string, f *os.File, size int64, meta map[string]string, old []leftover) error {
	psize := s.partSizeFor(size)
	nparts := int32((size + psize - 1) / psize)

	// Resume the newest open upload of key that is still there, abort
	// the others.
	var id string
	have := map[int32]types.Part{}
	for _, l := range old {
		if id != "" {
			if err := s.abort(ctx, key, l.id); err != nil {
				return err
			}
			continue
		}
		parts, err := s.listParts(ctx, key, l.id)
		if err != nil {
			if status(err) != 404 { // NoSuchUpload: gone, try the next
				return s.wrap("put", u, err)
			}
			s.untrack(l.id)
			continue
		}
		id, have = l.id, parts
	}
	if id == "" {
		out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: aws.String(key), Metadata: meta,
		})
		if err != nil {
			return s.wrap("put", u, err)
		}
		id = aws.ToString(out.UploadId)
		s.track(id, key)
	}

	done := make([]types.CompletedPart, 0, nparts)
	for n := int32(1); n <= nparts; n++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("put %s: %w", u, err)
		}
		off := int64(n-1) * psize
		ln := min(psize, size-off)
		sum, err := sumMD5(f, off, ln)
		if err != nil {
			return fmt.Errorf("put %s: read %s: %w", u, f.Name(), err)
		}
		etag := `"` + hex.EncodeToString(sum) + `"`
		if p, ok := have[n]; ok && aws.ToInt64(p.Size) == ln && strings.EqualFold(aws.ToString(p.ETag), etag) {
			done = append(done, types.CompletedPart{PartNumber: aws.Int32(n), ETag: p.ETag})
		} else {
			if testPartMD5 != nil {
				testPartMD5(n, sum)
			}
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:        aws.String(s.bucket),
				Key:           aws.String(key),
				UploadId:      aws.String(id),
				PartNumber:    aws.Int32(n),
				Body:          io.NewSectionReader(f, off, ln),
				ContentLength: aws.Int64(ln),
				ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum)),
			})
			if err != nil {
				return s.failUpload(ctx, key, u, id, err)
			}
			done = append(done, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag})
		}
		if testAfterPart != nil {
			testAfterPart(n)
		}
	}
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(key),
		UploadId:        aws.String(id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	})
	if err != nil {
		return s.failUpload(ctx, key, u, id, err)
	}
	s.untrack(id)
	return nil
}

// failUpload classifies a failed part or completion. After a Final error
// the upload is aborted (no retry will use it); otherwise it stays open for
// the next Put to resume.
func (s *Store) failUpload(ctx context.Context, key, u, id string, err error) error {
	e := s.wrap("put", u, err)
	if oe, ok := e.(*Error); ok && oe.Code == "NoSuchUpload" {
		s.untrack(id) // gone: the next Put starts a new one
	}
	if c, ok := ClassOf(e); ok && c == Final {
		if aerr := s.abort(context.WithoutCancel(ctx), key, id); aerr != nil {
			return fmt.Errorf("%w (and %v)", e, aerr)
		}
	}
	return e
}

// listParts returns the parts of an open upload by number.
func (s *Store) listParts(ctx context.Context, key, id string) (map[int32]types.Part, error) {
	parts := map[int32]types.Part{}
	in := &s3.ListPartsInput{Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: aws.String(id)}
	for range maxParts/1000 + 1 {
		out, err := s.client.ListParts(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, p := range out.Parts {
			parts[aws.ToInt32(p.PartNumber)] = p
		}
		if !aws.ToBool(out.IsTruncated) || aws.ToString(out.NextPartNumberMarker) == "" {
			break
		}
		in.PartNumberMarker = out.NextPartNumberMarker
	}
	return parts, nil
}
