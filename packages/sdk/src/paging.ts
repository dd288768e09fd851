/**
 * Paged lists. Awaiting one gives the page asked for, as the seed's method does; `page()` gives it with the server's
 * `total`; iterating with `for await` walks every item from there on, page after page, until the server says it is
 * done (a short or empty page, `total` reached, or no next cursor).
 */
export interface Page<T, C = number> {
  items: T[];
  /** The server's count of every match, when the route reports one. */
  total?: number;
  /** Where the next page starts; undefined when this was the last page. */
  next?: C;
}

export class PagedList<T, C = number> implements PromiseLike<T[]>, AsyncIterable<T> {
  private first: Promise<Page<T, C>> | undefined;

  constructor(
    private readonly fetchPage: (cursor: C) => Promise<Page<T, C>>,
    private readonly start: C,
  ) {}

  /** The first page with its total. */
  page(): Promise<Page<T, C>> {
    this.first ??= this.fetchPage(this.start);
    return this.first;
  }

  then<A = T[], B = never>(
    onfulfilled?: ((value: T[]) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.page()
      .then((p) => p.items)
      .then(onfulfilled, onrejected);
  }

  catch<B = never>(onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<T[] | B> {
    return this.then(undefined, onrejected);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    let page = await this.page();
    for (;;) {
      yield* page.items;
      if (page.next === undefined) return;
      page = await this.fetchPage(page.next);
    }
  }

  /** Every item from the start on, in one array. */
  async all(): Promise<T[]> {
    const out: T[] = [];
    for await (const item of this) out.push(item);
    return out;
  }
}

/** An offset-paged route's page: the next offset unless this page was short, empty or reached `total`. */
export function offsetPage<T>(items: T[], offset: number, limit: number, total?: number): Page<T> {
  const end = offset + items.length;
  const done = items.length === 0 || items.length < limit || (total !== undefined && end >= total);
  return { items, total, next: done ? undefined : end };
}
