DROP TABLE ferry_exports;
