/**
 * One server (re)start at a time. Requests that arrive while one runs are coalesced into a single follow-up run;
 * requests within `debounceMs` of each other (a burst of settings changes) become one.
 */
export class RestartScheduler {
  private running: Promise<void> | undefined;
  private queued: { reasons: string[]; promise: Promise<void> } | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private debounced: { reasons: string[]; resolve: () => void; promise: Promise<void> } | undefined;

  constructor(
    private readonly run: (reasons: string[]) => Promise<void>,
    private readonly debounceMs = 250,
  ) {}

  /** Restart now (or right after the one in progress). */
  request(reason: string): Promise<void> {
    return this.requestAll([reason]);
  }

  private requestAll(reasons: string[]): Promise<void> {
    if (this.queued) {
      this.queued.reasons.push(...reasons);
      return this.queued.promise;
    }
    if (!this.running) {
      return this.start(reasons);
    }
    const promise = this.running.then(
      () => this.startQueued(),
      () => this.startQueued(),
    );
    this.queued = { reasons, promise };
    return promise;
  }

  /** Restart after things have been quiet for `debounceMs`. */
  requestDebounced(reason: string): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    if (!this.debounced) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.debounced = { reasons: [], resolve, promise };
    }
    this.debounced.reasons.push(reason);
    const pending = this.debounced;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.debounced = undefined;
      this.requestAll(pending.reasons).then(pending.resolve, pending.resolve);
    }, this.debounceMs);
    return pending.promise;
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private startQueued(): Promise<void> {
    const queued = this.queued!;
    this.queued = undefined;
    return this.start(queued.reasons);
  }

  private start(reasons: string[]): Promise<void> {
    const p = (async () => {
      try {
        await this.run(reasons);
      } finally {
        this.running = undefined;
      }
    })();
    this.running = p;
    return p;
  }
}
