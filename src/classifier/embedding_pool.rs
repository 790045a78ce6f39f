//! Big embedding jobs on every core: the corrections an import brings, or
//! every stored correction after the bundle's encoder changed, are texts
//! without a vector under this encoder — thousands, at ~5 ms each on one
//! core. An [`EmbeddingPool`] embeds runs of them on other threads (in the
//! browser, Web Workers that each load the same encoder:
//! `src/js/embedding-pool.js`) while the classifier's own thread embeds
//! runs too; the rules about when it is worth it, which texts go together,
//! who takes which run and what a failure means are here.

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::Poll;

use crate::encoder::Encoder;
use crate::error::{Error, Result};
pub use crate::head::train::EmbeddingProgress;

/// A future an [`EmbeddingPool`] returns (single-threaded: wasm's promises
/// are not `Send`).
pub type PoolFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Embeds runs of texts on other threads, each with an encoder built from
/// the same bytes as the classifier's, so each run's vectors are the ones
/// the classifier's own encoder computes, bit for bit.
pub trait EmbeddingPool {
    /// Threads it embeds on besides the classifier's (its workers).
    fn workers(&self) -> usize;

    /// One run's vectors, row-major: a run is texts
    /// [`Encoder::embedding_runs`] grouped (similar lengths, at most 32),
    /// which a worker embeds as one batch padded as the classifier would.
    /// Runs are handed to the workers in the order asked, each to the
    /// first one free; the workers start with the first run of a job.
    fn embed_run(&self, texts: Vec<String>) -> PoolFuture<Result<Vec<f32>>>;

    /// Lets the pool's answers in after the classifier's thread embedded a
    /// run itself (in the browser they arrive as messages, which a busy
    /// thread does not receive).
    fn breathe(&self) -> PoolFuture<()>;

    /// A clock in milliseconds (any origin): how long the classifier's
    /// thread waits for a worker's last run before taking it back.
    fn now_ms(&self) -> f64;

    /// The job is over: the workers (each holding an encoder, ~60 MB in
    /// wasm) may go, and runs still asked for are dropped. The next job
    /// starts them again.
    fn release(&self);

    /// The pool failed with `error` and its job's texts are being embedded
    /// on the classifier's own encoder instead: the place to say so.
    fn failed(&self, error: &Error);
}

/// Fewer texts than this are embedded on the classifier's thread alone: a
/// pool's worker must load the encoder first (~0.3 s in Chromium on a
/// laptop, while the classifier's thread already embeds, and each holds
/// ~60 MB while it works), which a smaller job (~1 s on one thread) barely
/// pays for; the page test's 600 texts gain 0.1–0.5 s
/// (`tests/js/embedding-pool.test.mjs`).
pub const POOL_FROM_TEXTS: usize = 256;

/// Whether `texts` texts are worth a pool of `workers` workers.
pub fn worth_a_pool(texts: usize, workers: usize) -> bool {
    workers >= 1 && texts >= POOL_FROM_TEXTS
}

/// Runs asked of the pool ahead, per worker: while the classifier's thread
/// embeds a run of its own it hears nothing, so each worker holds the next
/// run when it finishes one (the JS pool hands a worker two at once).
const RUNS_AHEAD_PER_WORKER: usize = 2;

/// Embeds `texts` on `pool` and this thread together (when there is a
/// pool: [`EmbeddingJob`] decides, by [`worth_a_pool`] on the whole job),
/// else on this thread alone, in the runs [`Encoder::embed`] makes, so the
/// vectors are its own either way, bit for bit; `progress(texts done)`
/// after each run. If the pool fails for any reason but a cancel (a worker
/// could not load the encoder, the browser stopped one), it is told, set
/// to `None` for the rest of the job, and the texts are embedded here
/// instead: slower, the same vectors.
async fn embed_texts(
    encoder: &Encoder,
    pool: &mut Option<&dyn EmbeddingPool>,
    texts: &[&str],
    progress: &mut dyn FnMut(usize) -> ControlFlow<()>,
) -> Result<Vec<f32>> {
    // Progress never goes back, though the texts start over here after a
    // pool that failed midway.
    let mut reported = 0;
    let mut progress = |done: usize| {
        reported = reported.max(done);
        progress(reported)
    };
    if let Some(on) = *pool {
        match embed_runs(encoder, Some(on), texts, &mut progress).await {
            Ok(vectors) => return Ok(vectors),
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => {
                on.failed(&e);
                *pool = None;
            }
        }
    }
    embed_runs(encoder, None, texts, &mut progress).await
}

/// With a pool: the pool takes the longest runs first and this thread the
/// shortest first, so they meet in the middle and finish together; this
/// thread embeds while the workers load the encoder, so the pool's start
/// costs the job little, and at the end takes back the runs the pool has
/// not answered, so a slow worker costs it little: those still waiting
/// behind a worker's current run at once, and a working pool's current
/// runs once they have taken longer than this thread would (which a
/// worker that has answered before, and started them first, rarely does).
async fn embed_runs(
    encoder: &Encoder,
    pool: Option<&dyn EmbeddingPool>,
    texts: &[&str],
    progress: &mut dyn FnMut(usize) -> ControlFlow<()>,
) -> Result<Vec<f32>> {
    let runs = encoder.embedding_runs(texts)?; // shortest first
    let dim = encoder.dim();
    let mut vectors = vec![0.0; texts.len() * dim];
    let mut place = |run: &[usize], values: Vec<f32>| -> Result<usize> {
        if values.len() != run.len() * dim {
            return Err(Error::ShapeMismatch {
                what: "the embedding pool's answer".into(),
                expected: format!(
                    "{} floats for a run of {} texts",
                    run.len() * dim,
                    run.len()
                ),
                found: format!("{} floats", values.len()),
            });
        }
        for (&i, v) in run.iter().zip(values.chunks_exact(dim)) {
            vectors[i * dim..(i + 1) * dim].copy_from_slice(v);
        }
        Ok(run.len())
    };
    let ahead = pool.map_or(0, |p| RUNS_AHEAD_PER_WORKER * p.workers());
    // The pool's next run is `runs[longest]`, going down; this thread's
    // `runs[shortest]`, going up.
    let mut longest = runs.len();
    let mut shortest = 0;
    let mut asked: Vec<(usize, PoolFuture<Result<Vec<f32>>>)> = Vec::new();
    let mut done = 0;
    // Runs the pool answered; this thread's own time and texts embedded.
    let mut answered = 0;
    let (mut own_ms, mut own_texts) = (0.0, 0);
    // Until when this thread waits for the pool's current runs.
    let mut waiting_until: Option<f64> = None;
    loop {
        // The pool's answers so far, without waiting for the others; then
        // as many runs asked as answered, before this thread's next run
        // (during which it hears nothing), so no worker runs out.
        let mut k = 0;
        while k < asked.len() {
            match poll_now(&mut asked[k].1).await {
                Some(answer) => {
                    let (run, _) = asked.remove(k);
                    done += place(&runs[run], answer?)?;
                    answered += 1;
                    if progress(done).is_break() {
                        return Err(Error::Cancelled);
                    }
                }
                None => k += 1,
            }
        }
        if let Some(pool) = pool {
            while asked.len() < ahead && shortest < longest {
                longest -= 1;
                let run_texts = runs[longest].iter().map(|&i| texts[i].to_owned()).collect();
                asked.push((longest, pool.embed_run(run_texts)));
            }
        }
        // This thread's next run: the shortest not handed out; once all
        // are, the newest run asked of the pool and not answered (the one
        // least likely to have started: a worker still loading the
        // encoder, as JavaScriptCore's take seconds to, never holds the
        // job up; an answer that comes later is dropped) — but not a
        // working pool's current runs (as many as it has workers) until
        // they have taken twice what this thread would for as many texts:
        // a worker began them before this thread's last run, and embedding
        // one again from the start would end the job later.
        let run = if shortest < longest {
            shortest += 1;
            shortest - 1
        } else {
            let Some(newest) = asked.last().map(|(run, _)| *run) else {
                break;
            };
            let current =
                pool.filter(|p| answered > 0 && own_texts > 0 && asked.len() <= p.workers());
            if let Some(pool) = current {
                let now = pool.now_ms();
                let texts_asked = asked
                    .iter()
                    .map(|(run, _)| runs[*run].len())
                    .max()
                    .unwrap_or(0);
                let until = *waiting_until
                    .get_or_insert(now + 2.0 * own_ms / own_texts as f64 * texts_asked as f64);
                if now < until {
                    pool.breathe().await;
                    continue;
                }
            }
            waiting_until = None;
            asked.pop();
            newest
        };
        let run_texts: Vec<&str> = runs[run].iter().map(|&i| texts[i]).collect();
        let started = pool.map(|p| p.now_ms());
        done += place(&runs[run], encoder.embed(&run_texts)?.into_vec())?;
        if let (Some(pool), Some(started)) = (pool, started) {
            own_ms += pool.now_ms() - started;
            own_texts += run_texts.len();
        }
        if progress(done).is_break() {
            return Err(Error::Cancelled);
        }
        if let Some(pool) = pool {
            pool.breathe().await;
        }
    }
    Ok(vectors)
}

/// `future`'s output if it is ready now (its waker registered if not).
async fn poll_now<T>(future: &mut PoolFuture<T>) -> Option<T> {
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// One big embedding job, embedded in one slice or in several (the
/// store's, cached as they come), on the pool if the whole job is worth one ([`worth_a_pool`]), telling
/// `progress` how far it is (first with nothing done) and stopping when it
/// answers `Break` ([`Error::Cancelled`]). The pool is released when the
/// job ends, however it ends.
pub struct EmbeddingJob<'a> {
    encoder: &'a Encoder,
    /// The pool while it works (`None` once it failed, or if the job is
    /// not worth it).
    pool: Option<&'a dyn EmbeddingPool>,
    /// The pool to release at the end, once the job has started on it.
    started: Option<&'a dyn EmbeddingPool>,
    /// Whether the first slice has decided on the pool.
    decided: bool,
    progress: &'a mut dyn FnMut(EmbeddingProgress) -> ControlFlow<()>,
}

impl<'a> EmbeddingJob<'a> {
    pub fn new(
        encoder: &'a Encoder,
        pool: Option<&'a dyn EmbeddingPool>,
        progress: &'a mut dyn FnMut(EmbeddingProgress) -> ControlFlow<()>,
    ) -> Self {
        EmbeddingJob {
            encoder,
            pool,
            started: None,
            decided: false,
            progress,
        }
    }

    /// The vectors of `texts`, the slice of the job (of `total` texts in
    /// all) after its first `done` texts.
    pub async fn embed_slice(
        &mut self,
        texts: &[&str],
        done: usize,
        total: usize,
    ) -> Result<Vec<f32>> {
        if !self.decided {
            self.decided = true;
            self.pool = self.pool.filter(|p| worth_a_pool(total, p.workers()));
            self.started = self.pool;
        }
        let workers = self.pool.map_or(0, |p| p.workers());
        let at = move |n: usize| EmbeddingProgress {
            done: done + n,
            total,
            workers,
        };
        if (self.progress)(at(0)).is_break() {
            return Err(Error::Cancelled);
        }
        let progress = &mut *self.progress;
        embed_texts(self.encoder, &mut self.pool, texts, &mut |n| {
            progress(at(n))
        })
        .await
    }

    /// The vectors of all of `texts` (the whole job), row-major.
    pub async fn embed_all(&mut self, texts: &[&str]) -> Result<Vec<f32>> {
        self.embed_slice(texts, 0, texts.len()).await
    }
}

impl Drop for EmbeddingJob<'_> {
    fn drop(&mut self) {
        if let Some(pool) = self.started {
            pool.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_pays_only_for_a_big_job() {
        assert!(!worth_a_pool(POOL_FROM_TEXTS - 1, 8));
        assert!(!worth_a_pool(10_000, 0));
        assert!(worth_a_pool(POOL_FROM_TEXTS, 1));
    }
}
