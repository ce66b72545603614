package reply

import (
	"context"
	"sync"
)

// batcher groups concurrent calls into one statement: while one batch runs, the calls that arrive
// queue up and go together in the next. Under load a few statements carry hundreds of rows; when
// idle a call runs alone at once, with no added wait. The database pool, not the provider, is what
// limits the sender, so this is where its throughput comes from.
type batcher[In, Out any] struct {
	calls   chan batchCall[In, Out]
	max     int
	workers int
	exec    func(ctx context.Context, ins []In) ([]Out, error) // outs aligned with ins
}

type batchCall[In, Out any] struct {
	in  In
	out chan batchResult[Out]
}

type batchResult[Out any] struct {
	v   Out
	err error
}

func newBatcher[In, Out any](max, workers int, exec func(context.Context, []In) ([]Out, error)) *batcher[In, Out] {
	return &batcher[In, Out]{calls: make(chan batchCall[In, Out]), max: max, workers: workers, exec: exec}
}

// start runs the batch workers until ctx ends; the returned func waits for them.
func (b *batcher[In, Out]) start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for range b.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.loop(ctx)
		}()
	}
	return wg.Wait
}

func (b *batcher[In, Out]) loop(ctx context.Context) {
	batch := make([]batchCall[In, Out], 0, b.max)
	ins := make([]In, 0, b.max)
	for {
		batch, ins = batch[:0], ins[:0]
		select {
		case c := <-b.calls:
			batch = append(batch, c)
		case <-ctx.Done():
			return
		}
	more:
		for len(batch) < b.max {
			select {
			case c := <-b.calls:
				batch = append(batch, c)
			default:
				break more
			}
		}
		for _, c := range batch {
			ins = append(ins, c.in)
		}
		outs, err := b.exec(context.WithoutCancel(ctx), ins)
		for i, c := range batch {
			var r batchResult[Out]
			if err != nil {
				r.err = err
			} else {
				r.v = outs[i]
			}
			c.out <- r
		}
	}
}

// do runs in in the next batch and returns its result.
func (b *batcher[In, Out]) do(ctx context.Context, in In) (Out, error) {
	c := batchCall[In, Out]{in: in, out: make(chan batchResult[Out], 1)}
	select {
	case b.calls <- c:
	case <-ctx.Done():
		var zero Out
		return zero, ctx.Err()
	}
	r := <-c.out
	return r.v, r.err
}
