/** Room names: 1-128 characters of letters, digits and `_ - . :`, starting with a letter or digit. */
export const ROOM_NAME_MAX_LENGTH = 128;
const ROOM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export function isValidRoomName(name: string): boolean {
  return ROOM_NAME.test(name);
}

/** Client message ids: 1-64 characters of letters, digits and `_ - . :`. */
export const MESSAGE_ID_MAX_LENGTH = 64;
export const MESSAGE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
