// Types of the realtime client (dist/realtime.mjs, and the globals of dist/realtime.js). The wire contract is
// shared/protocol.md; frames are typed by the fields a page uses, and keep any others.

export declare const VERSION: string;

export type State =
  | "idle"
  | "connecting"
  | "connected"
  | "reconnecting"
  | "unauthorized"
  | "refused"
  | "closed";

export interface StateDetail {
  code?: number;
  delayMs?: number;
  /** refused: 403 (this page's origin is not allowed) or 429 (too many connections) */
  status?: number;
  reason?: string;
}

export interface Frame {
  type: string;
  [field: string]: unknown;
}

export interface ConnectedFrame extends Frame {
  userId: number;
  unreadMessages: number;
  unreadNotifications: number;
}

export interface ChatMessage extends Frame {
  messageId: number;
  from: number;
  to: number;
  content: string;
}

export interface Notification extends Frame {
  notificationId: number;
  text: string;
  /** a grouped like: every stored notification it stands for (mark them read in one step) */
  notificationIds?: number[];
}

export interface PresenceEntry {
  userId: number;
  online: boolean;
  lastSeen: string | null;
}

export interface OutboxEntry {
  clientMsgId: string;
  to: number;
  content: string;
}

export interface StoredOutboxEntry extends OutboxEntry {
  userId: number | null;
}

/** Where unacknowledged messages outlive the page; IndexedDbOutboxStore by default. */
export interface OutboxStore {
  load(userId: number | null): Promise<StoredOutboxEntry[]>;
  put(entry: StoredOutboxEntry): Promise<unknown>;
  delete(clientMsgId: string): Promise<unknown>;
}

export interface BackoffOptions {
  baseMs?: number;
  capMs?: number;
  random?: () => number;
}

export interface ClientOptions {
  /** ws(s)://host:port/; by default the page's own host */
  url?: string;
  token?: string;
  /** called on connect when there is no token or it expires within tokenRefreshMarginMs, and that long before expiry */
  getToken?: () => string | Promise<string>;
  tokenRefreshMarginMs?: number;
  userId?: number | null;
  WebSocket?: unknown;
  backoff?: BackoffOptions;
  stableMs?: number;
  connectTimeoutMs?: number;
  heartbeatMs?: number;
  /** history(), conversations() and notifications() reject with code "timeout" after this long */
  requestTimeoutMs?: number;
  /** true: log to console.debug; a function: log through it */
  debug?: boolean | ((...args: unknown[]) => void);
  outboxStore?: OutboxStore;
  fetch?: typeof fetch | null;
  environment?: unknown;
}

export interface PageOptions {
  before?: number;
  limit?: number;
  timeoutMs?: number;
}

export interface ClientEvents {
  state: (state: State, detail: StateDetail) => void;
  connected: (frame: ConnectedFrame) => void;
  message: (frame: ChatMessage) => void;
  sent: (frame: Frame) => void;
  delivered: (frame: Frame) => void;
  read: (frame: Frame) => void;
  deleted: (frame: Frame) => void;
  typing: (frame: Frame) => void;
  presence: (users: PresenceEntry[]) => void;
  notification: (frame: Notification) => void;
  notificationRead: (frame: Frame) => void;
  notifications: (list: Notification[]) => void;
  failed: (failure: OutboxEntry & { error: Frame }) => void;
  error: (frame: Frame) => void;
}

export declare class Emitter<Events extends { [E in keyof Events]: (...args: any[]) => void }> {
  on<E extends keyof Events>(event: E, handler: Events[E]): () => void;
  off<E extends keyof Events>(event: E, handler: Events[E]): void;
  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void;
}

export declare class RealtimeError extends Error {
  constructor(code: string, message: string);
  code: string;
}

export declare class Outbox {
  add(entry: OutboxEntry): void;
  get(clientMsgId: string): OutboxEntry | undefined;
  has(clientMsgId: string): boolean;
  remove(clientMsgId: string): OutboxEntry | undefined;
  pending(): OutboxEntry[];
  readonly size: number;
}

export declare class IndexedDbOutboxStore implements OutboxStore {
  constructor(indexedDb?: IDBFactory | null);
  load(userId: number | null): Promise<StoredOutboxEntry[]>;
  put(entry: StoredOutboxEntry): Promise<unknown>;
  delete(clientMsgId: string): Promise<unknown>;
}

export declare class RealtimeClient extends Emitter<ClientEvents> {
  constructor(options?: ClientOptions);
  url: string;
  userId: number | null;
  state: State;
  outbox: Outbox;
  readonly connected: boolean;
  connect(): this;
  close(): void;
  reconnectNow(): void;
  setToken(token: string): void;
  send(to: number, content: string): string;
  markRead(messageId: number): boolean;
  typing(to: number, typing?: boolean): boolean;
  deleteMessage(messageId: number): boolean;
  watch(userIds: Iterable<number>): void;
  markNotificationRead(notificationId: number | number[] | "all"): boolean;
  history(withUser: number, options?: PageOptions): Promise<ChatMessage[]>;
  conversations(options?: PageOptions): Promise<Array<{ with: number; lastMessage: ChatMessage; unread: number }>>;
  notifications(options?: PageOptions): Promise<Notification[]>;
}

export interface NotifierEvents {
  unread: (count: number) => void;
  alert: (alert: { notification: Notification; sound: boolean; shown: boolean }) => void;
  leader: (leader: boolean) => void;
  sound: (on: boolean) => void;
  click: (notification: Notification) => void;
}

export declare class RealtimeNotifier extends Emitter<NotifierEvents> {
  constructor(client: RealtimeClient, options?: { title?: string; environment?: unknown });
  unread: number;
  leader: boolean;
  readonly permission: NotificationPermission | "unsupported";
  requestPermission(): Promise<NotificationPermission | "unsupported">;
  readonly soundEnabled: boolean;
  setSoundEnabled(on: boolean): void;
  beep(): boolean;
  destroy(): void;
}

export declare class ReconnectSchedule {
  constructor(options?: BackoffOptions & { stableMs?: number; now?: () => number });
  attempt: number;
  nextDelay(): number;
  connected(): void;
  disconnected(): void;
  reset(): void;
}

export declare class RecentIds {
  constructor(limit: number);
  add(id: unknown): boolean;
  has(id: unknown): boolean;
}

export declare function backoffDelay(attempt: number, options?: BackoffOptions): number;
export declare function tokenExpiry(token: string): number | null;
export declare function probeUrl(socketUrl: string): string;
