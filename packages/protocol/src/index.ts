export { PROTOCOL_VERSION, BEARER_PROTOCOL_PREFIX } from "./version.js";
export {
  ERRORS,
  RoomcastError,
  isErrorCode,
  errorCodeForClose,
  reconnectAdviceForClose,
  type ErrorCode,
  type ReconnectAdvice,
} from "./errors.js";
export { isValidRoomName, ROOM_NAME_MAX_LENGTH, MESSAGE_ID, MESSAGE_ID_MAX_LENGTH } from "./room-name.js";
export {
  ClientFrame,
  ServerFrame,
  PublishFrame,
  HistoryRequestFrame,
  Permission,
  Message,
  WelcomeFrame,
  MessageFrame,
  MessagesFrame,
  AckFrame,
  HistoryFrame,
  ErrorFrame,
  PresenceSetFrame,
  RefreshFrame,
  ProgressFrame,
  Member,
  ResumeFailure,
  PresenceStateFrame,
  PresenceDiffFrame,
  RefreshedFrame,
  ReconnectFrame,
  BroadcastFrame,
  BroadcastedFrame,
} from "./frames.js";
export { decodeClientFrame, decodeServerFrame, utf8Length, PING, PONG, type DecodeResult } from "./codec.js";
