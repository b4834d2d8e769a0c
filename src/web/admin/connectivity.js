// Being offline: a request that failed for want of the server (network
// down, 503, 429, a 5xx) is not an answer. The page keeps what it showed,
// says it is offline, and asks the server again with growing pauses; the
// first time the server answers, `onBack` refetches what the page shows.

const FIRST_PAUSE_MS = 1000;
// Short enough that a server back is noticed within seconds.
const LONGEST_PAUSE_MS = 8000;

const TRANSIENT = new Set(['NETWORK_ERROR', 'SERVICE_UNAVAILABLE', 'RATE_LIMITED']);

// Whether an API error says the server could not answer now, rather than
// what it answered.
export function isTransient(err) {
  if (TRANSIENT.has(err?.code)) return true;
  return err?.code === 'HTTP_ERROR' && Number(err?.status) >= 500;
}

export class Reconnector {
  // probe(): resolves when the server answers; onBack(): refetch;
  // render({ offline, seconds }): shows the state.
  constructor({ probe, onBack, render }) {
    Object.assign(this, { probe, onBack, render });
    this.offline = false;
    this.attempt = 0;
    this.timer = null;
    this.ticker = null;
  }

  // A request failed for want of the server.
  failed() {
    if (this.offline) return;
    this.offline = true;
    this.attempt = 0;
    this.schedule();
  }

  schedule() {
    const pause = Math.min(FIRST_PAUSE_MS * 2 ** this.attempt, LONGEST_PAUSE_MS);
    this.attempt += 1;
    const due = Date.now() + pause;
    const show = () => this.render({ offline: true, seconds: Math.max(0, Math.ceil((due - Date.now()) / 1000)) });
    show();
    clearInterval(this.ticker);
    this.ticker = setInterval(show, 1000);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.check(), pause);
  }

  async check() {
    clearInterval(this.ticker);
    this.render({ offline: true, seconds: 0 });
    try {
      await this.probe();
    } catch {
      if (this.offline) this.schedule();
      return;
    }
    this.back();
  }

  back() {
    if (!this.offline) return;
    this.offline = false;
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    this.render({ offline: false, seconds: 0 });
    this.onBack();
  }

  // Signed out: nothing to retry for.
  stop() {
    this.offline = false;
    clearTimeout(this.timer);
    clearInterval(this.ticker);
    this.render({ offline: false, seconds: 0 });
  }
}
