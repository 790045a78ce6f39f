//! Big embedding jobs on every core: the corrections an import brings, or
//! every stored correction after the bundle's encoder changed, are texts
//! without a vector under this encoder — thousands, at ~5 ms each on one
//! core. An [`EmbeddingPool`] embeds them elsewhere (in the browser, Web
//! Workers that each load the same encoder: `src/js/embedding-pool.js`);
//! the rules about when it is worth it, which texts go together and what
//! happens when it fails are here.

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;

use crate::encoder::Encoder;
use crate::error::{Error, Result};
pub use crate::head::train::EmbeddingProgress;

/// A future an [`EmbeddingPool`] returns (single-threaded: wasm's promises
/// are not `Send`).
pub type PoolFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Embeds runs of texts on other threads, each with an encoder built from
/// the same bytes as the classifier's, so each run's vectors are the ones
/// the classifier's own encoder computes, bit for bit.
pub trait EmbeddingPool {
    /// Runs it embeds at once (its workers).
    fn workers(&self) -> usize;

    /// Each run's vectors, row-major, in the order of `runs`: a run is
    /// texts [`Encoder::embedding_runs`] grouped (similar lengths, at most
    /// 32), so a worker embeds it as one batch padded as the classifier
    /// would. `progress(texts done)` after each run; the pool stops at
    /// once when it answers `Break` (the future then fails with
    /// [`Error::Cancelled`]).
    fn embed_runs<'a>(
        &'a self,
        runs: Vec<Vec<String>>,
        progress: &'a mut dyn FnMut(usize) -> ControlFlow<()>,
    ) -> PoolFuture<'a, Result<Vec<Vec<f32>>>>;

    /// The job is over: the workers (each holding an encoder, ~90 MB in
    /// wasm) may go. The next job starts them again.
    fn release(&self);

    /// The pool failed with `error` and its job's texts are being embedded
    /// on the classifier's own encoder instead: the place to say so.
    fn failed(&self, error: &Error);
}

/// Fewer texts than this are embedded on the classifier's own encoder: a
/// pool's workers must each load the encoder first (0.5–0.8 s on a laptop,
/// together on its cores), which 256 texts (~1.3 s on one core) barely pay
/// for (`bench/embedding-pool.mjs`).
pub const POOL_FROM_TEXTS: usize = 256;

/// Whether `texts` texts are worth a pool of `workers` workers.
pub fn worth_a_pool(texts: usize, workers: usize) -> bool {
    workers >= 2 && texts >= POOL_FROM_TEXTS
}

/// Embeds `texts` on `pool` (when there is one: [`EmbeddingJob`] decides,
/// by [`worth_a_pool`] on the whole job), else on `encoder`; `progress(texts
/// done)` after each run of texts on the pool, or once at the end on the
/// encoder. If the pool fails for any reason but a cancel (a worker could
/// not load the encoder, the browser stopped one), it is told, set to
/// `None` for the rest of the job, and the texts are embedded here
/// instead: slower, the same vectors.
async fn embed_texts(
    encoder: &Encoder,
    pool: &mut Option<&dyn EmbeddingPool>,
    texts: &[&str],
    progress: &mut dyn FnMut(usize) -> ControlFlow<()>,
) -> Result<Vec<f32>> {
    if let Some(on) = *pool {
        // Longest runs first: the last run handed out is a short one, so
        // the workers finish together instead of one waiting on the other.
        let mut runs = encoder.embedding_runs(texts)?;
        runs.reverse();
        let run_texts: Vec<Vec<String>> = runs
            .iter()
            .map(|run| run.iter().map(|&i| texts[i].to_owned()).collect())
            .collect();
        let answer = on.embed_runs(run_texts, progress).await;
        match answer.and_then(|vectors| scatter_runs(&runs, vectors, texts.len(), encoder.dim())) {
            Ok(vectors) => return Ok(vectors),
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => {
                on.failed(&e);
                *pool = None;
            }
        }
    }
    let vectors = encoder.embed(texts)?.into_vec();
    if progress(texts.len()).is_break() {
        return Err(Error::Cancelled);
    }
    Ok(vectors)
}

/// One big embedding job: its texts embedded a slice at a time, on the
/// pool if the whole job is worth one ([`worth_a_pool`]), telling
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
        self.decide(total);
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

    /// Whether a job of `total` texts goes to the pool (decided once).
    fn decide(&mut self, total: usize) {
        if !self.decided {
            self.decided = true;
            self.pool = self.pool.filter(|p| worth_a_pool(total, p.workers()));
            self.started = self.pool;
        }
    }

    /// The vectors of all of `texts` (the whole job), row-major: on the
    /// pool all at once (its workers never wait for a slice's last run),
    /// on this thread in slices of [`crate::store::EMBED_MISSING_TEXTS`]
    /// (so that progress moves).
    pub async fn embed_all(&mut self, texts: &[&str]) -> Result<Vec<f32>> {
        self.decide(texts.len());
        if self.pool.is_some() {
            return self.embed_slice(texts, 0, texts.len()).await;
        }
        let slice = crate::store::EMBED_MISSING_TEXTS;
        let mut vectors = Vec::with_capacity(texts.len() * self.encoder.dim());
        for (n, part) in texts.chunks(slice).enumerate() {
            vectors.extend(self.embed_slice(part, n * slice, texts.len()).await?);
        }
        Ok(vectors)
    }
}

impl Drop for EmbeddingJob<'_> {
    fn drop(&mut self) {
        if let Some(pool) = self.started {
            pool.release();
        }
    }
}

/// The runs' vectors put back in the texts' order; a pool that answered
/// with a wrong count or length is an error, not a silent misalignment.
fn scatter_runs(
    runs: &[Vec<usize>],
    vectors: Vec<Vec<f32>>,
    count: usize,
    dim: usize,
) -> Result<Vec<f32>> {
    let wrong = |what: String| Error::ShapeMismatch {
        what: "the embedding pool's answer".into(),
        expected: what,
        found: format!("{} runs", vectors.len()),
    };
    if vectors.len() != runs.len() {
        return Err(wrong(format!("{} runs", runs.len())));
    }
    let mut out = vec![0.0; count * dim];
    for (run, run_vectors) in runs.iter().zip(&vectors) {
        if run_vectors.len() != run.len() * dim {
            return Err(wrong(format!("{} floats in a run", run.len() * dim)));
        }
        for (&i, v) in run.iter().zip(run_vectors.chunks_exact(dim)) {
            out[i * dim..(i + 1) * dim].copy_from_slice(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_pays_only_for_a_big_job_on_two_workers_or_more() {
        assert!(!worth_a_pool(POOL_FROM_TEXTS - 1, 8));
        assert!(!worth_a_pool(10_000, 1));
        assert!(worth_a_pool(POOL_FROM_TEXTS, 2));
    }

    #[test]
    fn runs_go_back_to_their_texts_places() {
        let runs = vec![vec![2, 0], vec![1]];
        let vectors = vec![vec![2.0, 2.5, 0.0, 0.5], vec![1.0, 1.5]];
        let out = scatter_runs(&runs, vectors, 3, 2).unwrap();
        assert_eq!(out, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    }

    #[test]
    fn a_pool_answer_of_the_wrong_shape_is_refused() {
        let runs = vec![vec![0, 1]];
        assert!(scatter_runs(&runs, vec![vec![0.0; 3]], 2, 2).is_err());
        assert!(scatter_runs(&runs, vec![], 2, 2).is_err());
    }
}
