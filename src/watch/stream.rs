//! `futures_core::Stream` for [`Watch`] (feature `async`): waker-based, no runtime needed.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::de::DeserializeOwned;

use super::{Wake, Watch};
use crate::{Entry, Error, Result};

impl<V: DeserializeOwned> Stream for Watch<V> {
    type Item = Result<Vec<Option<Entry<V>>>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.is_done() {
            return Poll::Ready(None);
        }
        let always = !this.has_yielded();
        loop {
            if !always {
                match this.subscription_state().poll(cx.waker()) {
                    None => return Poll::Pending,
                    Some(Wake::Closed) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Some(Wake::Dirty | Wake::TimedOut) => {}
                }
            }
            match this.read(always) {
                Ok(Some(snapshot)) => return Poll::Ready(Some(Ok(snapshot))),
                Ok(None) => {}
                Err(Error::Closed) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Err(e) => {
                    this.finish();
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}
